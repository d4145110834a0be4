"""The API's reads: small SQL functions. Row-level security scopes every one of them to the caller's
tenant; the explicit customer filters are there for the planner (and as a second line)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from crm_link import master_data
from crm_link.ledger import DEFAULT_RADIUS_M
from crm_link.status import CUSTOMER_SUBTAG, CUSTOMER_WORD

# One round trip: the shipment with its item progress, timeline, customer-visible open exceptions and,
# while the vehicle carries it, the vehicle's last fix (nested JSON built by PostgreSQL).
_SHIPMENT = """
SELECT d.customer_id, d.external_ref, d.status, d.status_at, d.origin_site_id, d.destination_site_id,
       coalesce(d.destination_lat, s.lat) AS destination_lat, coalesce(d.destination_lon, s.lon) AS destination_lon,
       coalesce(d.destination_radius_m, s.radius_m) AS destination_radius_m,
       d.pickup_from, d.pickup_to, d.delivery_from, d.delivery_to, d.rush, d.service_level, d.vehicle_id,
       d.planned_route, d.eta, d.eta_p10, d.eta_p90, d.eta_method, d.eta_computed_at, d.created_at, d.updated_at,
       (SELECT language FROM customers WHERE id = d.customer_id) AS customer_language,
       coalesce(s.time_zone, (SELECT time_zone FROM sites WHERE id = d.origin_site_id), 'Asia/Shanghai') AS time_zone,
       (SELECT json_build_object('total', count(*), 'loaded', count(loaded_at), 'delivered', count(delivered_at))
        FROM demand_items WHERE demand_id = d.id) AS items,
       (SELECT coalesce(json_agg(json_build_object('status', status, 'ts', ts, 'biz_step', biz_step, 'place', place,
                                                   'lat', lat, 'lon', lon) ORDER BY id), '[]')
        FROM shipment_events WHERE demand_id = d.id) AS timeline,
       (SELECT coalesce(jsonb_agg(cargotrace_customer_exception(x) ORDER BY x.id), '[]')
        FROM exceptions x WHERE x.demand_id = d.id AND x.state <> 'resolved'
         AND cargotrace_customer_exception(x) IS NOT NULL) AS exceptions,
       CASE WHEN d.status IN ('in_transit', 'arrived') THEN
           (SELECT row_to_json(p) FROM (SELECT ts, lat, lon, speed_kmh, course_deg FROM positions
                                        WHERE vehicle_id = d.vehicle_id ORDER BY ts DESC LIMIT 1) p)
       END AS last_position,
       -- for the map: the two places of this shipment (never another site) and the plate of its truck
       (SELECT json_build_object('site_id', o.id, 'name', o.name, 'geofence', coalesce(
                   o.geofence_polygon::json, json_build_object('lat', o.lat, 'lon', o.lon, 'radius_m', o.radius_m)))
        FROM sites o WHERE o.id = d.origin_site_id AND (o.lat IS NOT NULL OR o.geofence_polygon IS NOT NULL)) AS origin,
       CASE WHEN coalesce(d.destination_lat, s.lat) IS NOT NULL THEN json_build_object(
           'site_id', s.id, 'name', s.name, 'geofence', CASE  -- the geofence arrival is judged by (correlate.py)
               WHEN d.destination_lat IS NULL AND s.geofence_polygon IS NOT NULL THEN s.geofence_polygon::json
               ELSE json_build_object('lat', coalesce(d.destination_lat, s.lat),
                                      'lon', coalesce(d.destination_lon, s.lon),
                                      'radius_m', coalesce(d.destination_radius_m, s.radius_m, %(radius)s)) END)
       END AS destination,
       (SELECT nullif(plate, '') FROM vehicles WHERE id = d.vehicle_id) AS vehicle_plate
FROM demands d LEFT JOIN sites s ON s.id = d.destination_site_id
WHERE d.customer_id = %(customer)s AND d.external_ref = %(ref)s
"""


def shipment(conn: psycopg.Connection, customer_id: str, external_ref: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_SHIPMENT, {"customer": customer_id, "ref": external_ref,
                                      "radius": DEFAULT_RADIUS_M}).fetchone()
    if row is not None:
        row["status_word"], row["status_subtag"] = CUSTOMER_WORD[row["status"]], CUSTOMER_SUBTAG[row["status"]]
    return row


def shipments(conn: psycopg.Connection, customer_id: str | None, status: str | None, since: datetime | None,
              until: datetime | None, attention: str | None, after: int, limit: int) -> list[dict]:
    """A page of shipments: of one customer, or of every customer (staff only: the caller's tenant scopes
    it); `attention` keeps those late (an open `late` exception, or an ETA past the window) or with any
    unresolved exception."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT d.id, d.customer_id, d.external_ref, d.status, d.status_at, d.vehicle_id, d.delivery_to, d.eta, "
            "d.eta_p10, d.eta_p90, d.eta_method "
            "FROM demands d WHERE (%(c)s::text IS NULL OR d.customer_id = %(c)s) "
            "AND (%(s)s::text IS NULL OR d.status = %(s)s) "
            "AND (%(since)s::timestamptz IS NULL OR d.created_at >= %(since)s) "
            "AND (%(until)s::timestamptz IS NULL OR d.created_at < %(until)s) "
            "AND (%(a)s::text IS NULL OR EXISTS (SELECT FROM exceptions x WHERE x.demand_id = d.id "
            "     AND x.state <> 'resolved' AND (%(a)s = 'exception' OR x.type = 'late')) "
            "     OR (%(a)s = 'late' AND d.status IN ('loaded', 'in_transit') AND d.eta > d.delivery_to)) "
            "AND d.id > %(after)s ORDER BY d.id LIMIT %(limit)s",
            {"c": customer_id, "s": status, "since": since, "until": until, "a": attention, "after": after,
             "limit": limit}).fetchall()
    for row in rows:
        row["status_word"], row["status_subtag"] = CUSTOMER_WORD[row["status"]], CUSTOMER_SUBTAG[row["status"]]
    return rows


def trail(conn: psycopg.Connection, customer_id: str, external_ref: str, max_points: int) -> list[dict] | None:
    """The vehicle's fixes while it carried this shipment (departure to arrival); None when there is no
    such shipment for this customer."""
    with conn.cursor(row_factory=dict_row) as cur:
        demand = cur.execute(
            "SELECT d.vehicle_id, min(e.ts) FILTER (WHERE e.status = 'in_transit') AS departed, "
            "min(e.ts) FILTER (WHERE e.status = 'arrived') AS arrived FROM demands d "
            "LEFT JOIN shipment_events e ON e.demand_id = d.id "
            "WHERE d.customer_id = %s AND d.external_ref = %s GROUP BY d.id", (customer_id, external_ref)).fetchone()
    if demand is None:
        return None
    if demand["vehicle_id"] is None or demand["departed"] is None:
        return []
    return positions(conn, demand["vehicle_id"], demand["departed"], demand["arrived"], max_points)


def positions(conn: psycopg.Connection, vehicle_id: str, since: datetime, until: datetime | None,
              max_points: int) -> list[dict]:
    """Fixes in [since, until), downsampled to at most `max_points`: the last fix of each equal time slice."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "WITH r AS (SELECT %(since)s::timestamptz AS lo, coalesce(%(until)s::timestamptz, now()) AS hi) "
            "SELECT ts, lat, lon, speed_kmh, course_deg FROM ("
            "  SELECT DISTINCT ON (slice) p.ts, p.lat, p.lon, p.speed_kmh, p.course_deg,"
            "         date_bin(greatest((r.hi - r.lo) / %(n)s, interval '1 second'), p.ts, r.lo) AS slice"
            "  FROM positions p, r WHERE p.vehicle_id = %(v)s AND p.ts >= r.lo AND p.ts < r.hi"
            "  ORDER BY slice, p.ts DESC) s ORDER BY ts",
            {"since": since, "until": until, "n": max_points, "v": vehicle_id}).fetchall()


def last_position(conn: psycopg.Connection, vehicle_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT ts, lat, lon, speed_kmh, course_deg FROM positions WHERE vehicle_id = %s "
                           "ORDER BY ts DESC LIMIT 1", (vehicle_id,)).fetchone()


def customer_exists(conn: psycopg.Connection, customer_id: str) -> bool:
    return conn.execute("SELECT 1 FROM customers WHERE id = %s", (customer_id,)).fetchone() is not None


SUBSCRIPTION = ("id, customer_id, audience, channel, url, email, language, event_types, active, disabled_reason, "
                "eta_threshold_s, created_at")

_EXCEPTIONS = """
SELECT x.id, x.type, x.state, x.opened_at, x.acknowledged_at, x.resolved_at, x.note, x.evidence, x.vehicle_id,
       d.external_ref, d.customer_id
FROM exceptions x LEFT JOIN demands d ON d.id = x.demand_id
WHERE (%(state)s::text IS NULL OR x.state = %(state)s) AND (%(type)s::text IS NULL OR x.type = %(type)s)
  AND (%(customer)s::text IS NULL OR d.customer_id = %(customer)s)
  AND (%(vehicle)s::text IS NULL OR x.vehicle_id = %(vehicle)s) AND (%(id)s::bigint IS NULL OR x.id = %(id)s)
  AND x.id > %(after)s
ORDER BY x.id LIMIT %(limit)s
"""


def exceptions(conn: psycopg.Connection, state: str | None = None, kind: str | None = None,
               customer_id: str | None = None, vehicle_id: str | None = None, exception_id: int | None = None,
               after: int = 0, limit: int = 100) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_EXCEPTIONS, {"state": state, "type": kind, "customer": customer_id, "vehicle": vehicle_id,
                                         "id": exception_id, "after": after, "limit": limit}).fetchall()


def exception(conn: psycopg.Connection, exception_id: int) -> dict[str, Any] | None:
    return next(iter(exceptions(conn, exception_id=exception_id, limit=1)), None)


def customer_exception(conn: psycopg.Connection, exception_id: int) -> dict[str, Any] | None:
    """What the shipment's customer sees of the exception (as in its shipment and webhooks); None: nothing."""
    row = conn.execute("SELECT jsonb_build_object('external_ref', d.external_ref) || cargotrace_customer_exception(x) "
                       "FROM exceptions x JOIN demands d ON d.id = x.demand_id WHERE x.id = %s",
                       (exception_id,)).fetchone()
    return row[0] if row else None


def vehicles(conn: psycopg.Connection, after: str = "", limit: int = 500) -> list[dict]:
    """A page of the fleet: each vehicle's master data, last fix and trips not yet delivered."""
    rows = master_data.page(conn, "vehicles", after, limit)
    with conn.cursor(row_factory=dict_row) as cur:
        trips = cur.execute(
            "SELECT d.vehicle_id, d.external_ref, d.customer_id, d.status, d.planned_route, "
            "d.eta, d.eta_p10, d.eta_p90, d.eta_method, "
            "coalesce(d.destination_lat, s.lat) AS lat, coalesce(d.destination_lon, s.lon) AS lon, "
            "coalesce(d.destination_radius_m, s.radius_m) AS radius_m, d.destination_site_id AS site_id "
            "FROM demands d LEFT JOIN sites s ON s.id = d.destination_site_id "
            "WHERE d.vehicle_id = ANY(%s) AND d.status <> 'delivered' ORDER BY d.id",
            ([r["id"] for r in rows],)).fetchall()
    by_vehicle: dict[str, list[dict]] = {}
    for t in trips:
        destination = {k: t.pop(k) for k in ("lat", "lon", "radius_m", "site_id")}
        by_vehicle.setdefault(t.pop("vehicle_id"), []).append({**t, "destination": destination})
    for row in rows:
        row["last_position"] = last_position(conn, row["id"])
        row["trips"] = by_vehicle.get(row["id"], [])
    return rows


def door_exists(conn: psycopg.Connection, site_id: str, door_id: str) -> bool:
    return conn.execute("SELECT 1 FROM read_points WHERE site_id = %s AND door_id = %s",
                        (site_id, door_id)).fetchone() is not None


def vehicle_exists(conn: psycopg.Connection, vehicle_id: str) -> bool:
    return conn.execute("SELECT 1 FROM vehicles WHERE id = %s", (vehicle_id,)).fetchone() is not None


def service_level(conn: psycopg.Connection, customer_id: str) -> str | None:
    row = conn.execute("SELECT service_level FROM customers WHERE id = %s", (customer_id,)).fetchone()
    return row[0] if row else None


def customer_record(conn: psycopg.Connection, customer_id: str) -> dict[str, Any] | None:
    """The four blocks of a customer's record (basic information, inquiries and feedback, logistics
    demand, demand changes), the newest 100 of each list; None when there is no such customer."""
    with conn.cursor(row_factory=dict_row) as cur:
        basic = cur.execute("SELECT id, name, service_level, contact, language, exception_thresholds, created_at "
                            "FROM customers WHERE id = %s", (customer_id,)).fetchone()
        if basic is None:
            return None
        feedback = cur.execute(
            "SELECT f.id, f.kind, f.rating, f.text, f.created_at, d.external_ref FROM feedback f "
            "LEFT JOIN demands d ON d.id = f.demand_id WHERE f.customer_id = %s ORDER BY f.id DESC LIMIT 100",
            (customer_id,)).fetchall()
        demands = cur.execute(
            "SELECT external_ref, status, status_at, delivery_to, eta, eta_p10, eta_p90, eta_method, vehicle_id, rush, "
            "service_level FROM demands "
            "WHERE customer_id = %s ORDER BY (status = 'delivered'), id DESC LIMIT 100", (customer_id,)).fetchall()
        changes = cur.execute(
            "SELECT d.external_ref, h.changed_at, h.changes FROM demand_history h JOIN demands d ON d.id = h.demand_id "
            "WHERE d.customer_id = %s ORDER BY h.id DESC LIMIT 100", (customer_id,)).fetchall()
    return {"basic": basic, "inquiries_and_feedback": feedback, "logistics_demand": demands,
            "demand_changes": changes}


def subscriptions(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {SUBSCRIPTION} FROM webhook_subscriptions ORDER BY id").fetchall()


def deliveries(conn: psycopg.Connection, state: str | None, subscription_id: int | None, after: int,
               limit: int) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, subscription_id, webhook_id, event_type, state, attempts, next_attempt_at, last_status, "
            "last_error, created_at, payload FROM webhook_deliveries "
            "WHERE (%(state)s::text IS NULL OR state = %(state)s) "
            "AND (%(sub)s::bigint IS NULL OR subscription_id = %(sub)s) "
            "AND id > %(after)s ORDER BY id LIMIT %(limit)s",
            {"state": state, "sub": subscription_id, "after": after, "limit": limit}).fetchall()
