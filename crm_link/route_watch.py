"""Watching a shipment in transit, fix by fix: the watch's state moves on, the ETA is updated, then
each detector (crm_link/detectors.py) may open or clear its kind of exception; `gps_silence` is
opened by a periodic sweep, as silence has no event.

Each exception is opened once per incident (Ledger.open_exception) and closes itself when its
condition clears: back inside the corridor, moving again, the ETA back inside the window, fixes again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from crm_link import eta
from crm_link.detectors import DETECTORS, Clear, Open, Situation, Watch
from crm_link.ledger import Ledger
from crm_link.thresholds import Thresholds


def on_fix(led: Ledger, cur: psycopg.Cursor, demand: dict[str, Any], fix: dict[str, Any], t: Thresholds,
           newest: bool, distance: float | None) -> None:
    """One accepted fix of the vehicle of an in-transit demand, applied to the batch's ledger; `newest`:
    the vehicle's newest fix in the batch, the one its ETA is made from; `distance` from the planned
    route (None without one). `demand` has id, vehicle_id, planned_route, delivery_to, eta*,
    destination_site_id and the origin and destination geofences (o_*, d_*); `cur` reads what only a
    long stop asks (the sites around it)."""
    watch = led.watches.get(demand["id"]) or Watch()
    at, lat, lon = fix["ts"], fix["lat"], fix["lon"]
    if watch.last_fix_at is not None and at <= watch.last_fix_at:
        return  # an older fix, committed late: the watch has moved on
    speed = fix["speed_kmh"] if fix["speed_kmh"] is not None else 0.0
    watch.advance(at, lat, lon, speed, distance, t)
    estimate = eta.update(led, cur, demand, fix, watch.speed_kmh_avg or 0.0, t, newest)
    situation = Situation(cur, demand, fix, t, watch, speed, distance, estimate.eta if estimate else None)
    cleared: dict[str, str] = {}
    for kind, detect in DETECTORS.items():
        finding = detect(situation)
        if isinstance(finding, Open):
            led.open_exception(kind, demand["id"], demand["vehicle_id"], at, finding.evidence)
        elif isinstance(finding, Clear):
            cleared[kind] = finding.note
    led.resolve(demand["id"], at, cleared)
    led.keep_watch(demand["id"], watch)


def sweep_gps_silence(conn: psycopg.Connection, t: Thresholds, now: datetime) -> int:
    """Open `gps_silence` for in-transit shipments whose vehicle sent no fix for too long (the
    customer's threshold where it has one); returns how many opened."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        # A demand a batch holds is skipped: the batch applies a fix of its vehicle, and it writes the
        # demand's exceptions from what it read of them.
        cur.execute(
            "SELECT d.id, d.vehicle_id, c.exception_thresholds AS overrides, "
            "coalesce(w.last_fix_at, e.ts) AS last_fix_at FROM demands d JOIN customers c ON c.id = d.customer_id "
            "LEFT JOIN route_watch w ON w.demand_id = d.id "
            "LEFT JOIN shipment_events e ON e.demand_id = d.id AND e.status = 'in_transit' "
            "WHERE d.status = 'in_transit' AND d.vehicle_id IS NOT NULL FOR UPDATE OF d SKIP LOCKED")
        silent = [r for r in cur.fetchall() if r["last_fix_at"] is not None
                  and (now - r["last_fix_at"]).total_seconds() >= t.overridden(r["overrides"]).gps_silence_s]
        led = Ledger()
        led.load_incidents(cur, [r["id"] for r in silent])
        for row in silent:
            led.open_exception("gps_silence", row["id"], row["vehicle_id"], now, {
                "last_fix_at": row["last_fix_at"], "silent_s": round((now - row["last_fix_at"]).total_seconds())})
        return len(led.flush(cur))
