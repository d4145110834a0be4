"""Observations and fixes → shipment status transitions, consumed in commit order, a batch at a time.

The work is split into partitions (storage/vocabulary.py: fixes by vehicle, observations by dock
door) that several processes share (crm_link/partitions.py). Each partition of each source table has
a durable cursor (txid, id) in `consumer_cursors`. Only rows whose writing transaction is older than every
transaction still running in this database are read (txid below the horizon), so no row can later
appear behind a cursor; the cursors move in the same transaction as the transitions they caused, so a
restart or a takeover neither skips nor repeats one.

A batch is applied set-wise (crm_link/ledger.py): its events are read, everything they concern is read
in a few statements, the events are applied in memory in time order (a vehicle's fixes in its own
order), and the changes are written in a few statements.

Order between a cargo's reads and its vehicle's fixes holds within a process; with partitions in
several processes, a read dated before its vehicle's departure but applied after it is handled as a
read that committed late: the item counts as loaded, and `missing_cargo` closes once none is missing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row

from crm_link.exceptions import Misloads, missing_cargo
from crm_link.geo import Geofence, off_route_many
from crm_link.ledger import Ledger
from crm_link.route_watch import on_fix
from crm_link.status import RANK
from crm_link.thresholds import Thresholds
from storage.vocabulary import PARTITION_KEY, PARTITIONS, STATUS_CHANNEL
from storage.vocabulary import correlator_cursor as consumer

log = logging.getLogger(__name__)
BATCH = 5000
DEFAULT_THRESHOLDS = Thresholds()
ALL = range(PARTITIONS)


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
# (pg_snapshot_xmin would count every database's); nor do this package's own connections (their names
# begin with CORRELATOR_APP or HISTORY_APP), which never write the source tables: another correlator's
# batch or a long fold of the speed history holds up no one. 32-bit backend xids are widened against
# the snapshot's xmax, which is at most 2^31 ahead of any running xid.
CORRELATOR_APP, HISTORY_APP = "cargotrace crm", "cargotrace history"  # then the process id
HORIZON = f"""
    SELECT coalesce(min(s.xmax - ((s.xmax %% 4294967296) - a.backend_xid::text::numeric + 4294967296) %% 4294967296),
                    s.xmax)::text::xid8
    FROM (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::numeric AS xmax) s
    LEFT JOIN pg_stat_activity a
           ON a.datname = current_database() AND a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
          AND a.application_name NOT LIKE '{CORRELATOR_APP} %%' AND a.application_name NOT LIKE '{HISTORY_APP} %%'
    GROUP BY s.xmax"""


def cursors(table: str) -> list[str]:
    """The names of every partition's cursor over a source table."""
    return [consumer(table, p) for p in ALL]


def unapplied(conn: psycopg.Connection, table: str) -> int:
    """How many stored rows of a source table their partition's cursor has not passed yet."""
    return conn.execute("SELECT count(*) " + _UNAPPLIED.format(table=table, key=PARTITION_KEY[table]),
                        _behind(conn, table)).fetchone()[0]


def oldest_unapplied_s(conn: psycopg.Connection, table: str) -> float | None:
    """How long ago the oldest row of a source table not yet applied was received; None when none is."""
    row = conn.execute("SELECT extract(epoch FROM now() - t.received_at)::float8 "
                       + _UNAPPLIED.format(table=table, key=PARTITION_KEY[table]) + " ORDER BY t.txid, t.id LIMIT 1",
                       _behind(conn, table)).fetchone()
    return row[0] if row else None


# The rows `t` of a source table that their partition's cursor has not passed, read by the (txid, id)
# index from the cursor furthest behind (the partitions move together but for the moments after a
# takeover); a partition without a cursor has applied nothing.
_UNAPPLIED = """FROM {table} t LEFT JOIN consumer_cursors k
    ON k.consumer = (%(cursors)s::text[])[cargotrace_partition({key}) + 1]
    WHERE (t.txid, t.id) > (%(txid)s::xid8, %(id)s) AND (k.consumer IS NULL OR (t.txid, t.id) > (k.txid, k.id))"""


def _behind(conn: psycopg.Connection, table: str) -> dict[str, Any]:
    names = cursors(table)
    at = conn.execute("SELECT txid::text, id FROM consumer_cursors WHERE consumer = ANY(%s)", (names,)).fetchall()
    txid, row_id = min(_xid(*c) for c in at) if len(at) == len(names) else (0, 0)
    return {"cursors": names, "txid": str(txid), "id": row_id}


def _xid(txid: str, row_id: int) -> tuple[int, int]:
    return int(txid), row_id


def _read(cur: psycopg.Cursor, kind: str, partitions: list[int]) -> tuple[list[Event], dict[str, tuple[str, int]]]:
    """The next committed rows of these partitions, in commit order; and each partition's new cursor."""
    table, cols = _SOURCES[kind]
    names = [consumer(table, p) for p in partitions]
    cur.execute("INSERT INTO consumer_cursors (consumer) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (names,))
    cur.execute("SELECT consumer, txid::text, id FROM consumer_cursors WHERE consumer = ANY(%s) ORDER BY consumer "
                "FOR UPDATE", (names,))
    at = {r["consumer"]: _xid(r["txid"], r["id"]) for r in cur.fetchall()}
    start = min(at.values())
    cur.execute(f"SELECT txid::text AS txid, cargotrace_partition({PARTITION_KEY[table]}) AS part, {cols} "
                f"FROM {table} WHERE (txid, id) > (%s::xid8, %s) AND txid < (" + HORIZON + ") "
                f"AND cargotrace_partition({PARTITION_KEY[table]}) = ANY(%s) ORDER BY txid, id LIMIT %s",
                (str(start[0]), start[1], partitions, BATCH))
    rows = cur.fetchall()
    if not rows:
        return [], {}
    last = _xid(rows[-1]["txid"], rows[-1]["id"])
    # A partition taken over from a process that was further ahead skips what that one applied.
    events = [Event(kind, r["id"], r["ts"], r) for r in rows
              if _xid(r["txid"], r["id"]) > at[consumer(table, r["part"])]]
    # Every partition read has consumed all its rows up to the last one read.
    return events, {name: (str(last[0]), last[1]) for name, cursor in at.items() if cursor < last}


def process_pending(conn: psycopg.Connection, consumed: Counter[str] | None = None,
                    thresholds: Thresholds = DEFAULT_THRESHOLDS, partitions: Iterable[int] = ALL) -> int:
    """Apply every committed, not yet consumed observation and fix of these partitions (all by
    default); returns how many demands changed status or got a new exception (once per batch, even when
    a demand moved several steps). `consumed` counts the events read, per kind, once their transaction
    committed; `thresholds` are the tenant's defaults of the route exceptions."""
    transitions = 0
    while (applied := apply_batch(conn, consumed, thresholds, partitions)) is not None:
        transitions += applied
    return transitions


def apply_batch(conn: psycopg.Connection, consumed: Counter[str] | None = None,
                thresholds: Thresholds = DEFAULT_THRESHOLDS, partitions: Iterable[int] = ALL) -> int | None:
    """Apply the next batch of these partitions in one transaction, as process_pending; None when
    nothing was pending."""
    owned = sorted(partitions)
    if not owned:
        return None
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        events: list[Event] = []
        moves: dict[str, tuple[str, int]] = {}
        for kind in _SOURCES:
            got, moved = _read(cur, kind, owned)
            events += got
            moves |= moved
        if not moves:
            return None
        touched = _apply(cur, events, thresholds)
        cur.executemany("UPDATE consumer_cursors SET txid = %s::xid8, id = %s WHERE consumer = %s",
                        [(txid, last_id, name) for name, (txid, last_id) in sorted(moves.items())])
        cur.execute("SELECT pg_notify(%s, d::text) FROM unnest(%s::bigint[]) d", (STATUS_CHANNEL, sorted(touched)))
    if consumed is not None:
        consumed.update(event.kind for event in events)
    return len(touched)


def _apply(cur: psycopg.Cursor, events: list[Event], thresholds: Thresholds) -> set[int]:
    """The batch's events, in time order, observations before fixes of the same instant."""
    events.sort(key=lambda e: (e.ts, e.kind != "observation", e.id))
    reads = [e.data for e in events if e.kind == "observation" and e.data["epc_uri"]]
    fixes = [e.data for e in events if e.kind == "position"]
    misloads = Misloads()
    named = misloads.gather(cur, reads)
    led = Ledger()
    led.load(cur, list({o["epc_uri"] for o in reads}), list({p["vehicle_id"] for p in fixes}), sorted(named))
    misloads.ask_doors(cur, led, reads)
    route = _Route(led, fixes, thresholds)
    for event in events:
        if event.kind == "observation":
            if event.data["epc_uri"]:
                _observation(led, event.data, misloads)
        else:
            _position(led, cur, event.data, route)
    return led.flush(cur)


def _observation(led: Ledger, o: dict[str, Any], misloads: Misloads) -> None:
    misloads.check(led, o)
    site = o["read_point"].split("/", 1)[0]
    going_out, coming_in = o["direction"] in ("out", None), o["direction"] in ("in", None)
    for demand, item in led.by_epc.get(o["epc_uri"], ()):
        rank = RANK[demand["status"]]
        if demand["status"] == "delivered":
            continue
        if site == demand["origin_site_id"] and going_out and rank <= RANK["loaded"]:
            led.mark_item(item, "loaded_at", o["ts"])
            led.advance(demand, "loading", "observation", o, o["read_point"])
            if led.all_items(demand["id"], "loaded_at"):
                led.advance(demand, "loaded", "observation", o, o["read_point"])
        elif (site == demand["origin_site_id"] and going_out and demand["departed_at"] is not None
              and o["ts"] <= demand["departed_at"]):
            # Read out before the truck left, applied after it (committed late, or by another process
            # than the truck's fixes): the item was loaded, and if all were, none was missing.
            led.mark_item(item, "loaded_at", o["ts"])
            if led.all_items(demand["id"], "loaded_at"):
                led.resolve(demand["id"], demand["departed_at"], {"missing_cargo": "read out before departure"})
        elif site == demand["destination_site_id"] and coming_in and rank >= RANK["in_transit"]:
            led.mark_item(item, "delivered_at", o["ts"])
            if led.all_items(demand["id"], "delivered_at"):
                led.advance(demand, "delivered", "observation", o, o["read_point"])
        elif (site not in (demand["origin_site_id"], demand["destination_site_id"])
              and coming_in and rank >= RANK["in_transit"]):
            led.open_exception("wrong_destination", demand["id"], None, o["ts"], {
                "epc_uri": o["epc_uri"], "read_point": o["read_point"], "expected_site": demand["destination_site_id"],
                "observation_id": o["id"]})


class _Route:
    """What the batch's fixes share by vehicle and demand, worked out once: each vehicle's newest fix,
    the distances of its fixes from its demands' planned routes (one vectorised call per demand), the
    thresholds that apply to each demand."""

    def __init__(self, led: Ledger, fixes: list[dict[str, Any]], thresholds: Thresholds) -> None:
        by_vehicle: dict[str, list[dict[str, Any]]] = {}
        for p in fixes:
            by_vehicle.setdefault(p["vehicle_id"], []).append(p)
        self.newest = {vehicle: own[-1]["id"] for vehicle, own in by_vehicle.items()}
        self.off_route: dict[tuple[int, int], float] = {}
        self.thresholds: dict[int, Thresholds] = {}
        for vehicle, own in by_vehicle.items():
            for demand in led.by_vehicle.get(vehicle, ()):
                self.thresholds[demand["id"]] = thresholds.overridden(demand["exception_thresholds"])
                if demand["planned_route"]:
                    far = off_route_many(demand["planned_route"], np.array([p["lat"] for p in own]),
                                         np.array([p["lon"] for p in own]))
                    self.off_route |= {(demand["id"], p["id"]): float(d) for p, d in zip(own, far, strict=True)}


def _position(led: Ledger, cur: psycopg.Cursor, p: dict[str, Any], route: _Route) -> None:
    here = (p["lat"], p["lon"])
    for demand in led.by_vehicle.get(p["vehicle_id"], ()):
        if demand["status"] in ("loading", "loaded") and demand["o_lat"] is not None:
            origin = Geofence(demand["o_lat"], demand["o_lon"], demand["o_radius"], demand["o_polygon"])
            if not origin.contains(*here) and led.advance(demand, "in_transit", "position", p, None, *here):
                missing_cargo(led, demand["id"], p["vehicle_id"], p["ts"])
        if demand["status"] == "in_transit" and demand["d_lat"] is not None:
            destination = Geofence(demand["d_lat"], demand["d_lon"], demand["d_radius"], demand["d_polygon"])
            if destination.contains(*here):
                led.advance(demand, "arrived", "position", p, demand["destination_site_id"], *here)
        if demand["status"] == "in_transit":
            on_fix(led, cur, demand, p, route.thresholds[demand["id"]], route.newest[p["vehicle_id"]] == p["id"],
                   route.off_route.get((demand["id"], p["id"])))
