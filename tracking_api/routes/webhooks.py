"""Subscriptions — webhooks for systems, group robots and email for people — and their deliveries. A
customer manages its own; the CRM integration and admins manage any customer's (naming it). Row-level
security keeps other customers' rows invisible."""

from __future__ import annotations

from typing import Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from common.settings import Settings
from crm_link import mail, outbox, robots
from crm_link.webhooks import UnsafeURL, check_url, new_secret, resend
from storage.vocabulary import AUDIENCES, DELIVERY_STATES, LANGUAGES, NOTIFICATION_CHANNELS, WEBHOOK_EVENTS
from tracking_api import queries, writes
from tracking_api.auth import owner, require
from tracking_api.deps import db
from tracking_api.keys import Principal
from tracking_api.models import DeliveryPage, NewSubscriptionAnswer, Resent, Subscriptions
from tracking_api.params import After, Limit
from tracking_api.problems import found
from tracking_api.refusal import Refusal

router = APIRouter(tags=["webhooks"])
manager = require("customer", "integration", "admin")


class NewSubscription(BaseModel):
    channel: Literal[NOTIFICATION_CHANNELS] = Field(  # type: ignore[valid-type]
        "webhook", description="webhook: Standard Webhooks JSON to `url`; wecom, dingtalk, feishu: a message to the "
                               "group robot at `url`; email: a message to `email` (docs/notifications.md)")
    url: str | None = Field(None, max_length=2000, examples=["https://crm.example.com/hooks/cargotrace"])
    email: str | None = Field(None, max_length=254, description="the email channel's recipient")
    secret: str | None = Field(None, max_length=256, description="a DingTalk or Feishu robot's signing secret; "
                                                                 "never shown again")
    language: Literal[LANGUAGES] | None = Field(  # type: ignore[valid-type]
        None, description="of the messages for people; null: the customer's language at send time")
    event_types: list[Literal[WEBHOOK_EVENTS]] = Field(min_length=1)  # type: ignore[valid-type]
    customer_id: str | None = Field(None, max_length=64, description="required for staff; customers get their own")
    eta_threshold_s: int = Field(900, ge=0, description="shipment.eta_changed only when the ETA moves more")
    audience: Literal[AUDIENCES] = Field(  # type: ignore[valid-type]
        "customer", description="customer: what the API shows the customer (the exception kinds shippers see, "
                                "without evidence); staff (integration and admin keys only): everything")


def _address(body: NewSubscription, settings: Settings) -> None:
    """Where the channel sends is one it may: a vetted URL, a robot's vendor host, a valid address."""
    if body.channel == "email":
        if body.email is None or body.url is not None:
            raise Refusal(422, "problem.email_required")
        try:
            mail.address(body.email)
        except ValueError:
            raise Refusal(422, "problem.email_invalid") from None
        return
    if body.url is None:
        raise Refusal(422, "problem.url_required")
    if (body.channel in robots.SIGNED) != (body.secret is not None):
        raise (Refusal(422, "problem.secret_required", channel=body.channel) if body.channel in robots.SIGNED
               else Refusal(422, "problem.secret_unused"))
    try:
        if body.channel in robots.ROBOTS:
            outbox.vet_robot_url(body.channel, body.url, settings)
        else:
            check_url(body.url, settings)
    except UnsafeURL as exc:
        raise Refusal(422, "problem.url_refused", reason=str(exc)) from None


def shown(row: dict[str, Any]) -> dict[str, Any]:
    """A subscription as the API shows it: a robot's key or token is a credential, not shown again."""
    return {**row, "url": robots.masked(row["url"]) if row["channel"] in robots.ROBOTS else row["url"]}


@router.post("/v1/webhooks", status_code=201, response_model=NewSubscriptionAnswer,
             description="A webhook's signing `secret` is shown only in this answer; a robot's secret never.")
def create_subscription(request: Request, body: NewSubscription, who: Principal = Depends(manager),
                        c: psycopg.Connection = Depends(db)) -> Any:
    customer = owner(who, body.customer_id)
    if body.audience == "staff" and who.role == "customer":
        raise Refusal(403, "problem.staff_view")
    _address(body, request.app.state.settings)
    if not queries.customer_exists(c, customer):
        raise Refusal(422, "problem.no_such.customer")
    secret = new_secret() if body.channel == "webhook" else body.secret
    row = writes.add_subscription(c, customer, body.audience, body.channel, body.url, body.email, secret,
                                  body.language, sorted(set(body.event_types)), body.eta_threshold_s)
    return {**shown(row), "secret": secret if body.channel == "webhook" else None}


@router.get("/v1/webhooks", response_model=Subscriptions)
def list_subscriptions(who: Principal = Depends(manager), c: psycopg.Connection = Depends(db)) -> Any:
    return {"webhooks": [shown(row) for row in queries.subscriptions(c)]}


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
