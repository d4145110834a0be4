"""Observations and fixes → shipment status transitions, consumed in commit order.

Each source table has a durable cursor (txid, id) in `consumer_cursors`. Only rows whose writing
transaction is older than every transaction still running in this database are read (txid below
the horizon), so no row can later appear behind the cursor; the cursor moves in the same transaction as
the transitions it caused, so a restart neither skips nor repeats one.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from crm_link import exceptions
from crm_link.docks import DoorMemo
from crm_link.geo import Geofence
from crm_link.route_watch import on_fix
from crm_link.status import BIZ_STEP, RANK
from crm_link.thresholds import Thresholds
from storage.vocabulary import CORRELATOR_CURSORS, STATUS_CHANNEL

log = logging.getLogger(__name__)
BATCH = 5000
DEFAULT_THRESHOLDS = Thresholds()
DEFAULT_RADIUS_M = 300.0


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # observation | position
    id: int
    ts: datetime
    data: dict[str, Any]


_SOURCES = {
    "observation": ("tag_observations", "id, ts, epc_uri, read_point, direction, gateway_id, seq"),
    "position": ("positions", "id, ts, vehicle_id, lat, lon, speed_kmh, alarms, gateway_id, seq"),
}


# The oldest transaction still running in this database (as a 64-bit xid), or the next xid when
# none is: rows below it can no longer be joined by rows committed later. Only this database's
# writers count, so a long transaction elsewhere on the cluster does not stall the status feed
# (pg_snapshot_xmin would count every database's). 32-bit backend xids are widened against the
# snapshot's xmax, which is at most 2^31 ahead of any running xid.
_HORIZON = """
    SELECT coalesce(min(s.xmax - ((s.xmax %% 4294967296) - a.backend_xid::text::numeric + 4294967296) %% 4294967296),
                    s.xmax)::text::xid8
    FROM (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::numeric AS xmax) s
    LEFT JOIN pg_stat_activity a
           ON a.datname = current_database() AND a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
    GROUP BY s.xmax"""


def consumer(table: str) -> str:
    """The name of the status correlation's cursor over a source table."""
    return CORRELATOR_CURSORS[table]


def _read(cur: psycopg.Cursor, kind: str) -> tuple[list[Event], tuple[str, int] | None]:
    table, cols = _SOURCES[kind]
    consumer_name = consumer(table)
    cur.execute("INSERT INTO consumer_cursors (consumer) VALUES (%s) ON CONFLICT DO NOTHING", (consumer_name,))
    cur.execute("SELECT txid::text, id FROM consumer_cursors WHERE consumer = %s FOR UPDATE", (consumer_name,))
    txid, last_id = cur.fetchone().values()
    cur.execute(f"SELECT txid::text AS txid, {cols} FROM {table} "
                "WHERE (txid, id) > (%s::xid8, %s) AND txid < (" + _HORIZON + ") "
                "ORDER BY txid, id LIMIT %s", (txid, last_id, BATCH))
    rows = cur.fetchall()
    if not rows:
        return [], None
    events = [Event(kind, r["id"], r["ts"], r) for r in rows]
    return events, (rows[-1]["txid"], rows[-1]["id"])


def process_pending(conn: psycopg.Connection, consumed: Counter[str] | None = None,
                    thresholds: Thresholds = DEFAULT_THRESHOLDS) -> int:
    """Apply every committed, not yet consumed observation and fix; returns how many demands changed
    status or got a new exception (once per batch, even when a demand moved several steps).
    `consumed` counts the events read, per kind, once their transaction committed; `thresholds` are
    the tenant's defaults of the route exceptions."""
    transitions = 0
    while True:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            events: list[Event] = []
            cursors: dict[str, tuple[str, int]] = {}
            for kind in _SOURCES:
                got, cursor = _read(cur, kind)
                events += got
                if cursor:
                    cursors[kind] = cursor
            if not events:
                return transitions
            events.sort(key=lambda e: (e.ts, e.kind != "observation", e.id))
            touched: set[int] = set()
            doors: DoorMemo = {}
            for event in events:
                touched |= (_observation(cur, event, doors) if event.kind == "observation"
                            else _position(cur, event, thresholds))
            for kind, (txid, last_id) in cursors.items():
                cur.execute("UPDATE consumer_cursors SET txid = %s::xid8, id = %s WHERE consumer = %s",
                            (txid, last_id, consumer(_SOURCES[kind][0])))
            for demand_id in touched:
                cur.execute("SELECT pg_notify(%s, %s)", (STATUS_CHANNEL, str(demand_id)))
            transitions += len(touched)
        if consumed is not None:
            consumed.update(event.kind for event in events)


def _advance(cur: psycopg.Cursor, demand: dict[str, Any], status: str, event: Event, place: str | None,
             lat: float | None = None, lon: float | None = None) -> bool:
    """Move a demand forward to `status` (never back); one shipment_events row per status reached."""
    if RANK[status] <= RANK[demand["status"]]:
        return False
    cur.execute("INSERT INTO shipment_events (demand_id, status, ts, biz_step, place, lat, lon, source) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (demand["id"], status, event.ts, BIZ_STEP[status], place, lat, lon,
                 json.dumps({event.kind: {"gateway_id": event.data["gateway_id"], "seq": event.data["seq"],
                                          "id": event.id}})))
    cur.execute("UPDATE demands SET status = %s, status_at = %s, updated_at = now() WHERE id = %s",
                (status, event.ts, demand["id"]))
    log.info("demand %s: %s → %s", demand["id"], demand["status"], status)
    demand["status"] = status
    return True


def _observation(cur: psycopg.Cursor, event: Event, doors: DoorMemo) -> set[int]:
    o = event.data
    if not o["epc_uri"]:
        return set()
    site = o["read_point"].split("/", 1)[0]
    touched = exceptions.misloads(cur, o, doors)
    cur.execute("SELECT d.id, d.status, d.origin_site_id, d.destination_site_id, i.id AS item_id "
                "FROM demand_items i JOIN demands d ON d.id = i.demand_id "
                "WHERE i.epc_uri = %s AND d.status <> 'delivered' FOR UPDATE OF d, i", (o["epc_uri"],))
    going_out, coming_in = o["direction"] in ("out", None), o["direction"] in ("in", None)
    for demand in cur.fetchall():
        rank = RANK[demand["status"]]
        if site == demand["origin_site_id"] and going_out and rank <= RANK["loaded"]:
            cur.execute("UPDATE demand_items SET loaded_at = coalesce(loaded_at, %s) WHERE id = %s",
                        (event.ts, demand["item_id"]))
            changed = _advance(cur, demand, "loading", event, o["read_point"])
            if _all_items(cur, demand["id"], "loaded_at"):
                changed |= _advance(cur, demand, "loaded", event, o["read_point"])
        elif site == demand["destination_site_id"] and coming_in and rank >= RANK["in_transit"]:
            cur.execute("UPDATE demand_items SET delivered_at = coalesce(delivered_at, %s) WHERE id = %s",
                        (event.ts, demand["item_id"]))
            changed = _all_items(cur, demand["id"], "delivered_at") and _advance(
                cur, demand, "delivered", event, o["read_point"])
        elif (site not in (demand["origin_site_id"], demand["destination_site_id"])
              and coming_in and rank >= RANK["in_transit"]):
            changed = exceptions.open_exception(cur, "wrong_destination", demand["id"], None, event.ts, {
                "epc_uri": o["epc_uri"], "read_point": o["read_point"], "expected_site": demand["destination_site_id"],
                "observation_id": event.id})
        else:
            continue
        if changed:
            touched.add(demand["id"])
    return touched


def _all_items(cur: psycopg.Cursor, demand_id: int, column: str) -> bool:
    cur.execute(f"SELECT bool_and({column} IS NOT NULL) AS done FROM demand_items WHERE demand_id = %s", (demand_id,))
    return bool(cur.fetchone()["done"])


def _position(cur: psycopg.Cursor, event: Event, thresholds: Thresholds) -> set[int]:
    p = event.data
    cur.execute("SELECT d.id, d.status, d.vehicle_id, d.planned_route, d.delivery_to, d.eta, d.eta_computed_at, "
                "d.eta_p10, d.eta_p90, d.eta_method, c.exception_thresholds, "
                "o.lat AS o_lat, o.lon AS o_lon, o.radius_m AS o_radius, o.geofence_polygon AS o_polygon, "
                "coalesce(d.destination_lat, s.lat) AS d_lat, coalesce(d.destination_lon, s.lon) AS d_lon, "
                "coalesce(d.destination_radius_m, s.radius_m) AS d_radius, d.destination_site_id, "
                "CASE WHEN d.destination_lat IS NULL THEN s.geofence_polygon END AS d_polygon "
                "FROM demands d JOIN sites o ON o.id = d.origin_site_id JOIN customers c ON c.id = d.customer_id "
                "LEFT JOIN sites s ON s.id = d.destination_site_id "
                "WHERE d.vehicle_id = %s AND d.status IN ('loading', 'loaded', 'in_transit') FOR UPDATE OF d",
                (p["vehicle_id"],))
    touched = set()
    for demand in cur.fetchall():
        here = (p["lat"], p["lon"])
        demand["o_radius"] = demand["o_radius"] or DEFAULT_RADIUS_M
        demand["d_radius"] = demand["d_radius"] or DEFAULT_RADIUS_M
        if demand["status"] in ("loading", "loaded") and demand["o_lat"] is not None:
            origin = Geofence(demand["o_lat"], demand["o_lon"], demand["o_radius"], demand["o_polygon"])
            if not origin.contains(*here) and _advance(cur, demand, "in_transit", event, None, *here):
                exceptions.missing_cargo(cur, demand["id"], p["vehicle_id"], event.ts)
                touched.add(demand["id"])
        if demand["status"] == "in_transit" and demand["d_lat"] is not None:
            destination = Geofence(demand["d_lat"], demand["d_lon"], demand["d_radius"], demand["d_polygon"])
            if destination.contains(*here) and _advance(cur, demand, "arrived", event,
                                                        demand["destination_site_id"], *here):
                touched.add(demand["id"])
        if demand["status"] == "in_transit" and on_fix(
                cur, demand, {**p, "id": event.id, "ts": event.ts},
                thresholds.overridden(demand["exception_thresholds"])):
            touched.add(demand["id"])
    return touched
