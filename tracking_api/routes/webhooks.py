"""Webhook subscriptions and their deliveries. A customer manages its own; the CRM integration and
admins manage any customer's (naming it). Row-level security keeps other customers' rows invisible."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from crm_link.webhooks import UnsafeURL, check_url, new_secret, resend
from storage.vocabulary import DELIVERY_STATES, WEBHOOK_EVENTS
from tracking_api.auth import require
from tracking_api.deps import db
from tracking_api.keys import Principal
from tracking_api.routes.shipments import owner

router = APIRouter(tags=["webhooks"])
manager = require("customer", "integration", "admin")
EventType = Literal[WEBHOOK_EVENTS]  # type: ignore[valid-type]


class NewSubscription(BaseModel):
    url: str = Field(max_length=2000, examples=["https://crm.example.com/hooks/cargotrace"])
    event_types: list[EventType] = Field(min_length=1)
    customer_id: str | None = Field(None, max_length=64, description="required for staff; customers get their own")
    eta_threshold_s: int = Field(900, ge=0, description="shipment.eta_changed only when the ETA moves more")


_SUBSCRIPTION = "id, customer_id, url, event_types, active, disabled_reason, eta_threshold_s, created_at"


def _subscription(row: tuple) -> dict[str, Any]:
    return dict(zip(_SUBSCRIPTION.split(", "), row, strict=True))


@router.post("/v1/webhooks", status_code=201, description="The response's `secret` is shown only this once.")
def create_subscription(request: Request, body: NewSubscription, who: Principal = Depends(manager),
                        c: psycopg.Connection = Depends(db)) -> dict[str, Any]:
    customer = owner(who, body.customer_id)
    try:
        check_url(body.url, request.app.state.settings)
    except UnsafeURL as exc:
        raise HTTPException(422, f"url refused: {exc}") from None
    if c.execute("SELECT 1 FROM customers WHERE id = %s", (customer,)).fetchone() is None:
        raise HTTPException(422, "no such customer")
    secret = new_secret()
    row = c.execute(f"INSERT INTO webhook_subscriptions (customer_id, url, secret, event_types, eta_threshold_s) "
                    f"VALUES (%s, %s, %s, %s, %s) RETURNING {_SUBSCRIPTION}",
                    (customer, body.url, secret, sorted(set(body.event_types)), body.eta_threshold_s)).fetchone()
    return {**_subscription(row), "secret": secret}


@router.get("/v1/webhooks")
def list_subscriptions(who: Principal = Depends(manager), c: psycopg.Connection = Depends(db)) -> dict[str, Any]:
    rows = c.execute(f"SELECT {_SUBSCRIPTION} FROM webhook_subscriptions ORDER BY id").fetchall()
    return {"webhooks": [_subscription(r) for r in rows]}


@router.delete("/v1/webhooks/{subscription_id}", status_code=204)
def delete_subscription(subscription_id: int, who: Principal = Depends(manager),
                        c: psycopg.Connection = Depends(db)) -> Response:
    if c.execute("DELETE FROM webhook_subscriptions WHERE id = %s RETURNING id", (subscription_id,)).fetchone() is None:
        raise HTTPException(404, "no such webhook")
    return Response(status_code=204)


@router.get("/v1/webhooks/deliveries")
def list_deliveries(state: Literal[DELIVERY_STATES] | None = None,
                    subscription_id: int | None = None, after: int = 0,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100, who: Principal = Depends(manager),
                    c: psycopg.Connection = Depends(db)) -> dict[str, Any]:
    rows = c.execute(
        "SELECT id, subscription_id, webhook_id, event_type, state, attempts, next_attempt_at, last_status, "
        "last_error, created_at, payload FROM webhook_deliveries "
        "WHERE (%(state)s::text IS NULL OR state = %(state)s) "
        "AND (%(sub)s::bigint IS NULL OR subscription_id = %(sub)s) "
        "AND id > %(after)s ORDER BY id LIMIT %(limit)s",
        {"state": state, "sub": subscription_id, "after": after, "limit": limit}).fetchall()
    keys = ("id", "subscription_id", "webhook_id", "event_type", "state", "attempts", "next_attempt_at",
            "last_status", "last_error", "created_at", "payload")
    deliveries = [dict(zip(keys, r, strict=True)) for r in rows]
    return {"deliveries": deliveries, "next_after": deliveries[-1]["id"] if len(rows) == limit else None}


@router.post("/v1/webhooks/deliveries/{delivery_id}/resend", status_code=202)
def resend_delivery(delivery_id: int, who: Principal = Depends(manager),
                    c: psycopg.Connection = Depends(db)) -> dict[str, Any]:
    if not resend(c, delivery_id):
        raise HTTPException(404, "no such delivery")
    return {"id": delivery_id, "state": "pending"}
