"""The API's writes: small SQL functions, each under the caller's tenant (row-level security decides
what a customer's request may touch)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tracking_api.queries import SUBSCRIPTION


def add_feedback(conn: psycopg.Connection, customer_id: str, external_ref: str, kind: str, rating: int | None,
                 text: str) -> dict[str, Any] | None:
    """The stored feedback on the customer's shipment; None when it has no such shipment."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO feedback (customer_id, demand_id, kind, rating, text) "
            "SELECT d.customer_id, d.id, %s, %s, %s FROM demands d WHERE d.customer_id = %s AND d.external_ref = %s "
            "RETURNING id, kind, rating, created_at", (kind, rating, text, customer_id, external_ref)).fetchone()
    return None if row is None else {**row, "external_ref": external_ref}


def move_exception(conn: psycopg.Connection, exception_id: int, to: str, allowed_from: tuple[str, ...],
                   note: str | None) -> bool:
    """Acknowledge or resolve an exception that is in one of `allowed_from`; False when it is not."""
    stamp = "acknowledged_at" if to == "acknowledged" else "resolved_at"
    return conn.execute(f"UPDATE exceptions SET state = %s, {stamp} = now(), note = coalesce(%s, note) "
                        "WHERE id = %s AND state = ANY(%s) RETURNING id",
                        (to, note, exception_id, list(allowed_from))).fetchone() is not None


def assign_dock(conn: psycopg.Connection, site_id: str, door_id: str, vehicle_id: str, valid_from: datetime | None,
                valid_to: datetime | None, assigned_by: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "INSERT INTO dock_assignments (site_id, door_id, vehicle_id, valid_from, valid_to, assigned_by) "
            "VALUES (%s, %s, %s, coalesce(%s, now()), %s, %s) "
            "RETURNING id, site_id, door_id, vehicle_id, valid_from, valid_to",
            (site_id, door_id, vehicle_id, valid_from, valid_to, assigned_by)).fetchone()


def add_subscription(conn: psycopg.Connection, customer_id: str, audience: str, channel: str, url: str | None,
                     email: str | None, secret: str | None, language: str | None, event_types: list[str],
                     eta_threshold_s: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"INSERT INTO webhook_subscriptions (customer_id, audience, channel, url, email, secret, language, "
            f"event_types, eta_threshold_s) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {SUBSCRIPTION}",
            (customer_id, audience, channel, url, email, secret, language, event_types, eta_threshold_s)).fetchone()


def delete_subscription(conn: psycopg.Connection, subscription_id: int) -> bool:
    return conn.execute("DELETE FROM webhook_subscriptions WHERE id = %s RETURNING id",
                        (subscription_id,)).fetchone() is not None
