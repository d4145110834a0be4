"""Webhook subscriptions and their deliveries. A customer manages its own; the CRM integration and
admins manage any customer's (naming it). Row-level security keeps other customers' rows invisible."""

from __future__ import annotations

from typing import Any, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from crm_link.webhooks import UnsafeURL, check_url, new_secret, resend
from storage.vocabulary import AUDIENCES, DELIVERY_STATES, WEBHOOK_EVENTS
from tracking_api import queries, writes
from tracking_api.auth import owner, require
from tracking_api.deps import db
from tracking_api.keys import Principal
from tracking_api.models import DeliveryPage, NewSubscriptionAnswer, Resent, Subscriptions
from tracking_api.params import After, Limit
from tracking_api.problems import found

router = APIRouter(tags=["webhooks"])
manager = require("customer", "integration", "admin")


class NewSubscription(BaseModel):
    url: str = Field(max_length=2000, examples=["https://crm.example.com/hooks/cargotrace"])
    event_types: list[Literal[WEBHOOK_EVENTS]] = Field(min_length=1)  # type: ignore[valid-type]
    customer_id: str | None = Field(None, max_length=64, description="required for staff; customers get their own")
    eta_threshold_s: int = Field(900, ge=0, description="shipment.eta_changed only when the ETA moves more")
    audience: Literal[AUDIENCES] = Field(  # type: ignore[valid-type]
        "customer", description="customer: what the API shows the customer (the exception kinds shippers see, "
                                "without evidence); staff (integration and admin keys only): everything")


@router.post("/v1/webhooks", status_code=201, response_model=NewSubscriptionAnswer,
             description="The response's `secret` is shown only this once.")
def create_subscription(request: Request, body: NewSubscription, who: Principal = Depends(manager),
                        c: psycopg.Connection = Depends(db)) -> Any:
    customer = owner(who, body.customer_id)
    if body.audience == "staff" and who.role == "customer":
        raise HTTPException(403, "only an integration or admin key subscribes for the staff view")
    try:
        check_url(body.url, request.app.state.settings)
    except UnsafeURL as exc:
        raise HTTPException(422, f"url refused: {exc}") from None
    if not queries.customer_exists(c, customer):
        raise HTTPException(422, "no such customer")
    secret = new_secret()
    row = writes.add_subscription(c, customer, body.audience, body.url, secret, sorted(set(body.event_types)),
                                  body.eta_threshold_s)
    return {**row, "secret": secret}


@router.get("/v1/webhooks", response_model=Subscriptions)
def list_subscriptions(who: Principal = Depends(manager), c: psycopg.Connection = Depends(db)) -> Any:
    return {"webhooks": queries.subscriptions(c)}


@router.delete("/v1/webhooks/{subscription_id}", status_code=204, response_class=Response)
def delete_subscription(subscription_id: int, who: Principal = Depends(manager),
                        c: psycopg.Connection = Depends(db)) -> Response:
    found(writes.delete_subscription(c, subscription_id) or None, "webhook")
    return Response(status_code=204)


@router.get("/v1/webhooks/deliveries", response_model=DeliveryPage)
def list_deliveries(state: Literal[DELIVERY_STATES] | None = None,  # type: ignore[valid-type]
                    subscription_id: int | None = None, after: After = 0, limit: Limit = 100,
                    who: Principal = Depends(manager), c: psycopg.Connection = Depends(db)) -> Any:
    deliveries = queries.deliveries(c, state, subscription_id, after, limit)
    return {"deliveries": deliveries, "next_after": deliveries[-1]["id"] if len(deliveries) == limit else None}


@router.post("/v1/webhooks/deliveries/{delivery_id}/resend", status_code=202, response_model=Resent)
def resend_delivery(delivery_id: int, who: Principal = Depends(manager),
                    c: psycopg.Connection = Depends(db)) -> Any:
    found(resend(c, delivery_id) or None, "delivery")
    return {"id": delivery_id, "state": "pending"}
