"""The API's reads: small SQL functions, each scoped by the caller's customer where it applies."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from crm_link.status import CUSTOMER_WORD

_SHIPMENT = """
SELECT d.id, d.customer_id, d.external_ref, d.status, d.status_at, d.origin_site_id, d.destination_site_id,
       d.destination_lat, d.destination_lon, d.pickup_from, d.pickup_to, d.delivery_from, d.delivery_to, d.rush,
       d.service_level, d.vehicle_id, d.eta, d.created_at, d.updated_at
FROM demands d WHERE d.customer_id = %s AND d.external_ref = %s
"""


def shipment(conn: psycopg.Connection, customer_id: str, external_ref: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_SHIPMENT, (customer_id, external_ref)).fetchone()
        if row is None:
            return None
        demand_id = row.pop("id")
        row["status_word"] = CUSTOMER_WORD[row["status"]]
        row["items"] = cur.execute(
            "SELECT count(*) AS total, count(loaded_at) AS loaded, count(delivered_at) AS delivered "
            "FROM demand_items WHERE demand_id = %s", (demand_id,)).fetchone()
        row["timeline"] = cur.execute(
            "SELECT status, ts, biz_step, place, lat, lon FROM shipment_events WHERE demand_id = %s ORDER BY id",
            (demand_id,)).fetchall()
        row["exceptions"] = cur.execute(
            "SELECT type, state, opened_at FROM exceptions WHERE demand_id = %s AND state <> 'resolved' ORDER BY id",
            (demand_id,)).fetchall()
        row["last_position"] = last_position(conn, row["vehicle_id"]) if row["vehicle_id"] else None
    return row


def shipments(conn: psycopg.Connection, customer_id: str, status: str | None, after: int, limit: int) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT id, external_ref, status, status_at, vehicle_id, delivery_to FROM demands "
            "WHERE customer_id = %s AND (%s::text IS NULL OR status = %s) AND id > %s ORDER BY id LIMIT %s",
            (customer_id, status, status, after, limit)).fetchall()
    for row in rows:
        row["status_word"] = CUSTOMER_WORD[row["status"]]
    return rows


def last_position(conn: psycopg.Connection, vehicle_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT ts, lat, lon, speed_kmh, course_deg FROM positions WHERE vehicle_id = %s "
                           "ORDER BY ts DESC LIMIT 1", (vehicle_id,)).fetchone()


def customer_exists(conn: psycopg.Connection, customer_id: str) -> bool:
    return conn.execute("SELECT 1 FROM customers WHERE id = %s", (customer_id,)).fetchone() is not None
