"""One batch of the correlator in memory: what its events concern, read in a few statements (the
demands, locked in id order so that processes sharing the work never deadlock on them, their items,
route-watch states and unresolved exceptions), the changes the events make, applied here one event
after the other, and all of them written at the end in a few statements.

Every write of an exception happens under its demand's row lock, so the unresolved ones read here stay
the truth for the whole batch: an incident is opened once, and resolved once.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from crm_link.detectors import Watch
from crm_link.status import BIZ_STEP, RANK

Row = dict[str, Any]
IncidentKey = tuple[int | None, str | None, str]  # (demand, vehicle, type): one unresolved at a time
WATCH = [f.name for f in dataclasses.fields(Watch)]
DEFAULT_RADIUS_M = 300.0

# A demand with what its events are checked against: the origin's and the destination's geofences (o_*, d_*).
_DEMANDS = """
WITH wanted AS (
    SELECT unnest(%(ids)s::bigint[]) AS id
    UNION SELECT id FROM demands WHERE vehicle_id = ANY(%(vehicles)s::text[]) AND status <> 'delivered'
    UNION SELECT demand_id FROM demand_items WHERE epc_uri = ANY(%(epcs)s::text[]))
SELECT d.id, d.status, d.status_at, d.vehicle_id, d.origin_site_id, d.destination_site_id, d.planned_route,
       d.delivery_to, d.eta, d.eta_computed_at, d.eta_p10, d.eta_p90, d.eta_method, c.exception_thresholds,
       (SELECT ts FROM shipment_events WHERE demand_id = d.id AND status = 'in_transit') AS departed_at,
       o.lat AS o_lat, o.lon AS o_lon, coalesce(nullif(o.radius_m, 0), %(radius)s) AS o_radius,
       o.geofence_polygon AS o_polygon,
       coalesce(d.destination_lat, s.lat) AS d_lat, coalesce(d.destination_lon, s.lon) AS d_lon,
       coalesce(nullif(coalesce(d.destination_radius_m, s.radius_m), 0), %(radius)s) AS d_radius,
       CASE WHEN d.destination_lat IS NULL THEN s.geofence_polygon END AS d_polygon
FROM demands d JOIN wanted w ON w.id = d.id
JOIN sites o ON o.id = d.origin_site_id JOIN customers c ON c.id = d.customer_id
LEFT JOIN sites s ON s.id = d.destination_site_id
WHERE d.status <> 'delivered'
ORDER BY d.id FOR UPDATE OF d
"""


@dataclass(eq=False)
class Incident:
    """An exception row: stored (id) or opened in this batch; `resolved` when and why it ended here."""

    demand_id: int | None
    vehicle_id: str | None
    type: str
    opened_at: datetime
    evidence: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    resolved: tuple[datetime, str] | None = None


@dataclass(frozen=True, slots=True)
class EtaChange:
    demand_id: int
    computed_at: datetime
    eta: datetime
    p10: datetime
    p90: datetime
    method: str
    remaining_m: float
    speed_kmh: float
    position_id: int
    history: bool  # moved by more than noise: also a row of eta_history


@dataclass
class Ledger:
    demands: dict[int, Row] = field(default_factory=dict)
    items: dict[int, list[Row]] = field(default_factory=lambda: defaultdict(list))
    by_epc: dict[str, list[tuple[Row, Row]]] = field(default_factory=lambda: defaultdict(list))  # (demand, item)
    by_vehicle: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    watches: dict[int, Watch] = field(default_factory=dict)
    unresolved: dict[IncidentKey, Incident] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)  # demands whose status or exceptions changed
    memo: dict[str, Any] = field(default_factory=dict)  # what the batch's events read once for all
    _events: list[tuple[Any, ...]] = field(default_factory=list)
    _moved: set[int] = field(default_factory=set)
    _items: dict[int, Row] = field(default_factory=dict)
    _unmarked: Counter[tuple[int, str]] = field(default_factory=Counter)  # (demand, column) → items without it
    _watched: set[int] = field(default_factory=set)
    _etas: dict[int, list[EtaChange]] = field(default_factory=lambda: defaultdict(list))
    _incidents: list[Incident] = field(default_factory=list)  # opened or resolved here, in order

    # Reading

    def load(self, cur: psycopg.Cursor, epcs: list[str], vehicles: list[str], demand_ids: list[int]) -> None:
        """The open demands of these vehicles, of these EPCs' items and these ids, locked, with the rest."""
        cur.execute(_DEMANDS, {"ids": demand_ids, "vehicles": vehicles, "epcs": epcs, "radius": DEFAULT_RADIUS_M})
        for demand in cur.fetchall():
            self.demands[demand["id"]] = demand
            if demand["vehicle_id"] is not None:
                self.by_vehicle[demand["vehicle_id"]].append(demand)
        ids = list(self.demands)
        # Not locked: items change only under their demand's lock (crm_link/demands.py takes it first).
        cur.execute("SELECT id, demand_id, epc_uri, loaded_at, delivered_at FROM demand_items "
                    "WHERE demand_id = ANY(%s)", (ids,), binary=True)
        for item in cur.fetchall():
            self.items[item["demand_id"]].append(item)
            for column in ("loaded_at", "delivered_at"):
                self._unmarked[item["demand_id"], column] += item[column] is None
            self.by_epc[item["epc_uri"]].append((self.demands[item["demand_id"]], item))
        cur.execute(f"SELECT demand_id, {', '.join(WATCH)} FROM route_watch WHERE demand_id = ANY(%s)", (ids,))
        for row in cur.fetchall():
            demand_id = row.pop("demand_id")
            self.watches[demand_id] = Watch(**row)
        self.load_incidents(cur, ids)

    def load_incidents(self, cur: psycopg.Cursor, demand_ids: list[int]) -> None:
        cur.execute("SELECT id, demand_id, vehicle_id, type, opened_at FROM exceptions "
                    "WHERE demand_id = ANY(%s) AND state <> 'resolved'", (demand_ids,))
        for row in cur.fetchall():
            self.unresolved[(row["demand_id"], row["vehicle_id"], row["type"])] = Incident(**row)

    # Changing, in memory

    def advance(self, demand: Row, status: str, kind: str, event: Row, place: str | None,
                lat: float | None = None, lon: float | None = None) -> bool:
        """Move a demand forward to `status` (never back); one shipment_events row per status reached.
        `event` is the observation or position row (kind) that moved it."""
        if RANK[status] <= RANK[demand["status"]]:
            return False
        source = {kind: {"gateway_id": event["gateway_id"], "seq": event["seq"], "id": event["id"]}}
        self._events.append((demand["id"], status, event["ts"], BIZ_STEP[status], place, lat, lon, json.dumps(source)))
        demand["status"], demand["status_at"] = status, event["ts"]
        if status == "in_transit":
            demand["departed_at"] = event["ts"]
        self._moved.add(demand["id"])
        self.touched.add(demand["id"])
        return True

    def mark_item(self, item: Row, column: str, at: datetime) -> None:
        """The item loaded (`loaded_at`) or delivered (`delivered_at`), first time only."""
        if item[column] is None:
            item[column] = at
            self._items[item["id"]] = item
            self._unmarked[item["demand_id"], column] -= 1

    def all_items(self, demand_id: int, column: str) -> bool:
        return bool(self.items.get(demand_id)) and self._unmarked[demand_id, column] == 0

    def open_exception(self, kind: str, demand_id: int | None, vehicle_id: str | None, at: datetime,
                       evidence: dict[str, Any]) -> bool:
        """Open an exception unless one of this kind is already unresolved; True when it was opened."""
        key = (demand_id, vehicle_id, kind)
        if key in self.unresolved:
            return False
        incident = Incident(demand_id, vehicle_id, kind, at, evidence)
        self.unresolved[key] = incident
        self._incidents.append(incident)
        if demand_id is not None:
            self.touched.add(demand_id)
        return True

    def resolve(self, demand_id: int, at: datetime, cleared: dict[str, str]) -> bool:
        """Close the demand's unresolved exceptions of the types in `cleared` (type → note)."""
        ended = [key for key in self.unresolved if key[0] == demand_id and key[2] in cleared]
        for key in ended:
            incident = self.unresolved.pop(key)
            incident.resolved = (at, cleared[key[2]])
            if incident.id is not None:
                self._incidents.append(incident)
        if ended:
            self.touched.add(demand_id)
        return bool(ended)

    def keep_watch(self, demand_id: int, watch: Watch) -> None:
        self.watches[demand_id] = watch
        self._watched.add(demand_id)

    def record_eta(self, demand: Row, change: EtaChange) -> None:
        demand.update(eta=change.eta, eta_computed_at=change.computed_at, eta_p10=change.p10, eta_p90=change.p90,
                      eta_method=change.method)
        self._etas[demand["id"]].append(change)

    # Writing

    def flush(self, cur: psycopg.Cursor) -> set[int]:
        """Write every change; returns the demands touched."""
        cur.execute("INSERT INTO shipment_events (demand_id, status, ts, biz_step, place, lat, lon, source) "
                    "SELECT * FROM unnest(%b::bigint[], %b::text[], %b::timestamptz[], %b::text[], %b::text[], "
                    "%b::float8[], %b::float8[], %b::jsonb[]) ON CONFLICT DO NOTHING",
                    [list(column) for column in zip(*self._events, strict=True)] if self._events else [[]] * 8)
        cur.executemany("UPDATE demands SET status = %s, status_at = %s, updated_at = now() WHERE id = %s",
                        [(self.demands[i]["status"], self.demands[i]["status_at"], i) for i in sorted(self._moved)])
        items = list(self._items.values())  # a pallet passage marks thousands: one statement
        cur.execute("UPDATE demand_items i SET loaded_at = coalesce(i.loaded_at, c.loaded_at), "
                    "delivered_at = coalesce(i.delivered_at, c.delivered_at) "
                    "FROM unnest(%b::bigint[], %b::timestamptz[], %b::timestamptz[]) "
                    "AS c (id, loaded_at, delivered_at) "
                    "WHERE i.id = c.id", ([i["id"] for i in items], [i["loaded_at"] for i in items],
                                          [i["delivered_at"] for i in items]))
        self._write_etas(cur)
        self._write_incidents(cur)
        cur.executemany(f"INSERT INTO route_watch (demand_id, {', '.join(WATCH)}) VALUES (%s{', %s' * len(WATCH)}) "
                        f"ON CONFLICT (demand_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in WATCH)}",
                        [(i, *dataclasses.astuple(self.watches[i])) for i in sorted(self._watched)])
        return self.touched

    def _write_etas(self, cur: psycopg.Cursor) -> None:
        last = [changes[-1] for changes in self._etas.values()]
        cur.executemany("UPDATE demands SET eta = %s, eta_computed_at = %s, eta_p10 = %s, eta_p90 = %s, "
                        "eta_method = %s WHERE id = %s",
                        [(c.eta, c.computed_at, c.p10, c.p90, c.method, c.demand_id) for c in last])
        cur.executemany("INSERT INTO eta_history (demand_id, computed_at, eta, remaining_m, speed_kmh, position_id, "
                        "eta_p10, eta_p90, method) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        [(c.demand_id, c.computed_at, c.eta, c.remaining_m, c.speed_kmh, c.position_id, c.p10, c.p90,
                          c.method) for changes in self._etas.values() for c in changes if c.history])

    def _write_incidents(self, cur: psycopg.Cursor) -> None:
        """Stored ones resolved, then new ones in rounds: an incident that opened, ended and opened again
        here is two rows, the first resolved before the second is inserted (one unresolved at a time)."""
        _resolve(cur, [i for i in self._incidents if i.id is not None])
        rounds: dict[IncidentKey, int] = defaultdict(int)
        by_round: dict[int, list[Incident]] = defaultdict(list)
        for incident in self._incidents:
            if incident.id is None:
                key = (incident.demand_id, incident.vehicle_id, incident.type)
                by_round[rounds[key]].append(incident)
                rounds[key] += 1
        for _, incidents in sorted(by_round.items()):
            cur.executemany("INSERT INTO exceptions (demand_id, vehicle_id, type, opened_at, evidence) "
                            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (coalesce(demand_id, 0), "
                            "coalesce(vehicle_id, ''), type) WHERE state <> 'resolved' DO NOTHING RETURNING id",
                            [(i.demand_id, i.vehicle_id, i.type, i.opened_at, json.dumps(i.evidence, default=str))
                             for i in incidents], returning=True)
            for incident in incidents:
                row = cur.fetchone()
                incident.id = row["id"] if row else None  # None: opened meanwhile by a sweep of its own
                cur.nextset()
            _resolve(cur, [i for i in incidents if i.id is not None])


def _resolve(cur: psycopg.Cursor, incidents: list[Incident]) -> None:
    cur.executemany("UPDATE exceptions SET state = 'resolved', resolved_at = %s, note = coalesce(note, %s) "
                    "WHERE id = %s AND state <> 'resolved'",
                    [(*i.resolved, i.id) for i in incidents if i.resolved])
