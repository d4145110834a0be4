"""The one place master data is written and read: customers, sites with their doors (read points),
vehicles and gateways. The API (under the caller's tenant) and the CLI (as the owner) both call it.

PUT semantics: a record replaces what was stored under its id, and storing the same record again
changes nothing. Deleting what other rows still name is refused with those names (`Referenced`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from crm_link.master_records import Circle, Customer, Gateway, Polygon, Record, Site, Vehicle

NAMED = 10  # references named per kind in a refusal


class Invalid(ValueError):
    """The record names something that does not exist, or takes what another record holds."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


class Referenced(Exception):
    """Other rows still name the record: {what: [their ids]}."""

    def __init__(self, what: str, references: dict[str, list[str]]) -> None:
        super().__init__(f"{what} is still referenced by " + "; ".join(
            f"{kind}: {', '.join(ids)}" for kind, ids in references.items()))
        self.references = references


def _names(conn: psycopg.Connection, queries: dict[str, str], value: Any) -> dict[str, list[str]]:
    """{kind: the first ids} for each query (one id column; every %s is `value`) that finds any."""
    found = {kind: [str(r[0]) for r in conn.execute(f"{sql} LIMIT {NAMED}", (value,) * sql.count("%s"))]
             for kind, sql in queries.items()}
    return {kind: ids for kind, ids in found.items() if ids}


@dataclass(frozen=True)
class Kind:
    table: str
    model: type[Record]
    columns: Callable[[Any], dict[str, Any]]  # record → column values
    shape: Callable[[psycopg.Connection, dict[str, Any]], dict[str, Any]]  # row → the resource
    check: Callable[[psycopg.Connection, str, Any], None]  # references of a record to be stored
    references: dict[str, str]  # who names an id of this kind: {kind: SQL selecting their ids, %s = the id}


def _nothing(conn: psycopg.Connection, record_id: str, record: Any) -> None:
    return None


def _customer_columns(c: Customer) -> dict[str, Any]:
    return {"name": c.name, "service_level": c.service_level, "contact": json.dumps(c.contact),
            "language": c.language, "exception_thresholds": c.exception_thresholds.model_dump_json()}


def _customer_shape(conn: psycopg.Connection, row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "name", "service_level", "contact", "language", "exception_thresholds")}


def _site_columns(s: Site) -> dict[str, Any]:
    circle = s.geofence if isinstance(s.geofence, Circle) else s.geofence.enclosing_circle()
    polygon = s.geofence.model_dump_json() if isinstance(s.geofence, Polygon) else None
    return {"name": s.name, "address": s.address, "time_zone": s.time_zone, "lat": circle.lat, "lon": circle.lon,
            "radius_m": circle.radius_m, "geofence_polygon": polygon, "gln": s.gln}


def _site_shape(conn: psycopg.Connection, row: dict[str, Any]) -> dict[str, Any]:
    doors = [r[0] for r in conn.execute("SELECT door_id FROM read_points WHERE site_id = %s ORDER BY door_id",
                                        (row["id"],))]
    geofence = row["geofence_polygon"] or {"lat": row["lat"], "lon": row["lon"], "radius_m": row["radius_m"]}
    return {"id": row["id"], "name": row["name"], "address": row["address"], "time_zone": row["time_zone"],
            "geofence": geofence, "doors": doors, "gln": row["gln"]}


# Who uses a read point (site_id/door_id): observations made there, gateways reading it, dock assignments.
_READ_POINT_USERS = {
    "observations": "SELECT DISTINCT read_point FROM (SELECT read_point FROM tag_observations "
                    "WHERE read_point = ANY(%s) LIMIT 1000) o",
    "gateways": "SELECT id FROM gateways WHERE read_points && %s",
    "dock_assignments": "SELECT DISTINCT site_id || '/' || door_id FROM dock_assignments "
                        "WHERE site_id || '/' || door_id = ANY(%s)",
}


def _replace_doors(conn: psycopg.Connection, site_id: str, doors: list[str]) -> None:
    """The site's read points become its doors; a door still in use is not taken away."""
    gone = [r[0] for r in conn.execute("SELECT id FROM read_points WHERE site_id = %s AND NOT (door_id = ANY(%s))",
                                       (site_id, doors))]
    if gone:
        used = _names(conn, _READ_POINT_USERS, gone)
        if used:
            raise Referenced(f"doors {', '.join(gone)}", used)
        conn.execute("DELETE FROM read_points WHERE id = ANY(%s)", (gone,))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO read_points (id, site_id, door_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        [(f"{site_id}/{door}", site_id, door) for door in doors])


def _vehicle_columns(v: Vehicle) -> dict[str, Any]:
    return v.model_dump()


def _vehicle_shape(conn: psycopg.Connection, row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", *Vehicle.model_fields)}


def _exists(conn: psycopg.Connection, table: str, record_id: str) -> bool:
    return conn.execute(f"SELECT 1 FROM {table} WHERE id = %s", (record_id,)).fetchone() is not None


def _check_vehicle(conn: psycopg.Connection, vehicle_id: str, v: Vehicle) -> None:
    # gateway_id is the id the gateway publishes under, not checked against `gateways`: a truck and its
    # gateway name each other, and either may be registered first.
    for column in ("tag_epc_uri", "telematics_id"):
        value = getattr(v, column)
        holder = value and conn.execute(f"SELECT id FROM vehicles WHERE {column} = %s AND id <> %s",
                                        (value, vehicle_id)).fetchone()
        if holder:
            raise Invalid(column, f"already the vehicle {holder[0]!r}'s")


def _gateway_columns(g: Gateway) -> dict[str, Any]:
    return g.model_dump()


def _gateway_shape(conn: psycopg.Connection, row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", *Gateway.model_fields)}


def _check_gateway(conn: psycopg.Connection, gateway_id: str, g: Gateway) -> None:
    if g.site_id and not _exists(conn, "sites", g.site_id):
        raise Invalid("site_id", f"unknown site {g.site_id!r}")
    if g.vehicle_id and not _exists(conn, "vehicles", g.vehicle_id):
        raise Invalid("vehicle_id", f"unknown vehicle {g.vehicle_id!r}")
    known = {r[0] for r in conn.execute("SELECT id FROM read_points WHERE id = ANY(%s)", (g.read_points,))}
    if unknown := [rp for rp in g.read_points if rp not in known]:
        raise Invalid("read_points", f"unknown read points: {', '.join(unknown)} (a site's doors)")


KINDS: dict[str, Kind] = {
    "customers": Kind("customers", Customer, _customer_columns, _customer_shape, _nothing, {
        "demands": "SELECT external_ref FROM demands WHERE customer_id = %s ORDER BY id",
        "api_keys": "SELECT prefix FROM api_keys WHERE customer_id = %s AND revoked_at IS NULL ORDER BY id",
        "revoked_api_keys": "SELECT prefix FROM api_keys WHERE customer_id = %s AND revoked_at IS NOT NULL "
                            "ORDER BY id",
        "feedback": "SELECT id FROM feedback WHERE customer_id = %s ORDER BY id",
        "webhook_subscriptions": "SELECT id FROM webhook_subscriptions WHERE customer_id = %s ORDER BY id"}),
    "sites": Kind("sites", Site, _site_columns, _site_shape, _nothing, {
        "demands": "SELECT customer_id || '/' || external_ref FROM demands "
                   "WHERE origin_site_id = %s OR destination_site_id = %s ORDER BY id",
        "gateways": "SELECT id FROM gateways WHERE site_id = %s ORDER BY id",
        "dock_assignments": "SELECT id FROM dock_assignments WHERE site_id = %s ORDER BY id",
        "observations": "SELECT id FROM read_points r WHERE site_id = %s "
                        "AND EXISTS (SELECT 1 FROM tag_observations o WHERE o.read_point = r.id) ORDER BY id"}),
    "vehicles": Kind("vehicles", Vehicle, _vehicle_columns, _vehicle_shape, _check_vehicle, {
        "demands": "SELECT customer_id || '/' || external_ref FROM demands WHERE vehicle_id = %s ORDER BY id",
        "gateways": "SELECT id FROM gateways WHERE vehicle_id = %s ORDER BY id",
        "dock_assignments": "SELECT id FROM dock_assignments WHERE vehicle_id = %s ORDER BY id"}),
    "gateways": Kind("gateways", Gateway, _gateway_columns, _gateway_shape, _check_gateway, {
        "vehicles": "SELECT id FROM vehicles WHERE gateway_id = %s ORDER BY id"}),
}


def put(conn: psycopg.Connection, kind: str, record_id: str, record: Record) -> tuple[dict[str, Any], bool]:
    """Store the record under its id; returns (the stored resource, created)."""
    k = KINDS[kind]
    with conn.transaction():
        k.check(conn, record_id, record)
        values = k.columns(record)
        names = ", ".join(values)
        created = conn.execute(
            f"INSERT INTO {k.table} (id, {names}) VALUES (%s, {', '.join(['%s'] * len(values))}) "
            f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in values)} "
            "RETURNING xmax = 0", (record_id, *values.values())).fetchone()[0]
        if isinstance(record, Site):
            _replace_doors(conn, record_id, record.doors)
    stored = get(conn, kind, record_id)
    assert stored is not None
    return stored, created


def get(conn: psycopg.Connection, kind: str, record_id: str) -> dict[str, Any] | None:
    return next(iter(page(conn, kind, only=record_id)), None)


def page(conn: psycopg.Connection, kind: str, after: str = "", limit: int = 100,
         only: str | None = None) -> list[dict[str, Any]]:
    """Records in id order after `after` (keyset paging), or the one with id `only`."""
    k = KINDS[kind]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT * FROM {k.table} WHERE (%(only)s::text IS NULL OR id = %(only)s) "
                           "AND id > %(after)s ORDER BY id LIMIT %(limit)s",
                           {"only": only, "after": after, "limit": limit}).fetchall()
    return [k.shape(conn, row) for row in rows]


def remove(conn: psycopg.Connection, kind: str, record_id: str) -> bool:
    """Delete the record; False when there is none. Raises Referenced while other rows name it."""
    k = KINDS[kind]
    with conn.transaction():
        if conn.execute(f"SELECT 1 FROM {k.table} WHERE id = %s FOR UPDATE", (record_id,)).fetchone() is None:
            return False
        if used := _names(conn, k.references, record_id):
            raise Referenced(f"{kind[:-1]} {record_id}", used)
        if kind == "sites":
            conn.execute("DELETE FROM read_points WHERE site_id = %s", (record_id,))
        conn.execute(f"DELETE FROM {k.table} WHERE id = %s", (record_id,))
    return True
