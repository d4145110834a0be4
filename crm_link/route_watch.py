"""Watching a shipment in transit, fix by fix: the watch's state moves on, the ETA is updated, then
each detector (crm_link/detectors.py) may open or clear its kind of exception; `gps_silence` is
opened by a periodic sweep, as silence has no event.

Each exception is opened once per incident (exceptions.open_exception) and closes itself when its
condition clears: back inside the corridor, moving again, the ETA back inside the window, fixes again.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from crm_link import eta
from crm_link.detectors import DETECTORS, Clear, Open, Situation, Watch
from crm_link.exceptions import open_exception
from crm_link.geo import off_route_m
from crm_link.thresholds import Thresholds

_WATCH = [f.name for f in dataclasses.fields(Watch)]


def resolve(cur: psycopg.Cursor, demand_id: int, at: datetime, cleared: dict[str, str]) -> bool:
    """Close the demand's unresolved exceptions of the types in `cleared` (type → note), in one statement."""
    cur.execute("UPDATE exceptions e SET state = 'resolved', resolved_at = %s, note = coalesce(e.note, c.note) "
                "FROM unnest(%s::text[], %s::text[]) AS c (type, note) "
                "WHERE e.demand_id = %s AND e.type = c.type AND e.state <> 'resolved'",
                (at, list(cleared), list(cleared.values()), demand_id))
    return cur.rowcount > 0


def on_fix(cur: psycopg.Cursor, demand: dict[str, Any], fix: dict[str, Any], t: Thresholds) -> bool:
    """One accepted fix of the vehicle of an in-transit demand; True when an exception opened or closed.
    `demand` has id, vehicle_id, planned_route, delivery_to, eta, destination_site_id and the origin and
    destination geofences (o_*, d_*)."""
    cur.execute(f"SELECT {', '.join(_WATCH)} FROM route_watch WHERE demand_id = %s FOR UPDATE", (demand["id"],))
    row = cur.fetchone()
    watch = Watch(**row) if row else Watch()
    at, lat, lon = fix["ts"], fix["lat"], fix["lon"]
    if watch.last_fix_at is not None and at <= watch.last_fix_at:
        return False  # an older fix, committed late: the watch has moved on
    speed = fix["speed_kmh"] if fix["speed_kmh"] is not None else 0.0
    distance = off_route_m(demand["planned_route"], lat, lon) if demand["planned_route"] else None
    watch.advance(at, lat, lon, speed, distance, t)
    estimate = eta.update(cur, demand, fix, watch.speed_kmh_avg or 0.0, t)
    situation = Situation(cur, demand, fix, t, watch, speed, distance, estimate.eta if estimate else None)
    changed = False
    cleared: dict[str, str] = {}
    for kind, detect in DETECTORS.items():
        finding = detect(situation)
        if isinstance(finding, Open):
            changed |= open_exception(cur, kind, demand["id"], demand["vehicle_id"], at, finding.evidence)
        elif isinstance(finding, Clear):
            cleared[kind] = finding.note
    changed |= resolve(cur, demand["id"], at, cleared)
    values = dataclasses.astuple(watch)
    cur.execute(f"INSERT INTO route_watch (demand_id, {', '.join(_WATCH)}) VALUES (%s{', %s' * len(_WATCH)}) "
                f"ON CONFLICT (demand_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _WATCH)}",
                (demand["id"], *values))
    return changed


def sweep_gps_silence(conn: psycopg.Connection, t: Thresholds, now: datetime) -> int:
    """Open `gps_silence` for in-transit shipments whose vehicle sent no fix for too long (the
    customer's threshold where it has one); returns how many opened."""
    opened = 0
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT d.id, d.vehicle_id, c.exception_thresholds AS overrides, "
            "coalesce(w.last_fix_at, e.ts) AS last_fix_at FROM demands d JOIN customers c ON c.id = d.customer_id "
            "LEFT JOIN route_watch w ON w.demand_id = d.id "
            "LEFT JOIN shipment_events e ON e.demand_id = d.id AND e.status = 'in_transit' "
            "WHERE d.status = 'in_transit' AND d.vehicle_id IS NOT NULL")
        for row in cur.fetchall():
            limit = t.overridden(row["overrides"]).gps_silence_s
            if row["last_fix_at"] is not None and (now - row["last_fix_at"]).total_seconds() >= limit:
                opened += open_exception(cur, "gps_silence", row["id"], row["vehicle_id"], now, {
                    "last_fix_at": row["last_fix_at"], "silent_s": round((now - row["last_fix_at"]).total_seconds())})
    return opened
