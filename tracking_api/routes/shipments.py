"""Customer endpoints: own shipments, their vehicle's trail, a live stream, and share links."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import AwareDatetime
from sse_starlette import EventSourceResponse

from storage.vocabulary import STATUSES
from tracking_api import queries, share
from tracking_api.auth import require
from tracking_api.deps import db, db_read, tenant
from tracking_api.keys import Principal
from tracking_api.live import shipment_change
from tracking_api.params import Ref

router = APIRouter(tags=["customer"])
Token = Annotated[str, Path(min_length=10, max_length=512, pattern=r"^[A-Za-z0-9_.-]+$")]
CustomerId = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
                                         description="required for staff roles; customers always see their own")]
MaxPoints = Annotated[int, Query(ge=2, le=5000, description="downsampled to at most this many fixes")]
reader = require("customer", "dispatcher", "admin")


def owner(who: Principal, customer_id: str | None) -> str:
    """Customers see their own; dispatchers and admins name the customer."""
    if who.role == "customer":
        return who.customer_id or ""
    if not customer_id:
        raise HTTPException(422, "customer_id is required for this role")
    return customer_id


def found(value: Any) -> Any:
    if value is None:  # also for another customer's shipment: existence is not confirmed
        raise HTTPException(404, "no such shipment")
    return value


@router.get("/v1/shipments")
def list_shipments(status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")] = None,
                   since: Annotated[AwareDatetime | None, Query(description="created at or after")] = None,
                   until: Annotated[AwareDatetime | None, Query(description="created before")] = None,
                   after: Annotated[int, Query(ge=0, le=2**62, description="cursor: next_after of the last page")] = 0,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100, customer_id: CustomerId = None,
                   who: Principal = Depends(reader), c: psycopg.Connection = Depends(db_read)) -> dict[str, Any]:
    rows = queries.shipments(c, owner(who, customer_id), status, since, until, after, limit)
    cursor = rows[-1]["id"] if len(rows) == limit else None
    return {"shipments": [{k: v for k, v in row.items() if k != "id"} for row in rows], "next_after": cursor}


@router.get("/v1/shipments/{external_ref}")
def get_shipment(external_ref: Ref, customer_id: CustomerId = None, who: Principal = Depends(reader),
                 c: psycopg.Connection = Depends(db_read)) -> dict[str, Any]:
    return found(queries.shipment(c, owner(who, customer_id), external_ref))


@router.get("/v1/shipments/{external_ref}/trail")
def get_trail(external_ref: Ref, customer_id: CustomerId = None, max_points: MaxPoints = 500,
              who: Principal = Depends(reader), c: psycopg.Connection = Depends(db_read)) -> dict[str, Any]:
    return {"positions": found(queries.trail(c, owner(who, customer_id), external_ref, max_points))}


@router.get("/v1/shipments/{external_ref}/stream", response_class=EventSourceResponse,
            description="Server-Sent Events: `status` (the shipment, first its current state), `position` of its "
                        "vehicle while it carries the shipment, `exception` (customer-visible ones).")
def stream_shipment(request: Request, external_ref: Ref, customer_id: CustomerId = None,
                    who: Principal = Depends(reader)) -> EventSourceResponse:
    return _stream(request, Principal(who.role, owner(who, customer_id), who.prefix), external_ref)


@router.post("/v1/shipments/{external_ref}/share", status_code=201)
def create_share_link(request: Request, external_ref: Ref, customer_id: CustomerId = None,
                      days: Annotated[int | None, Query(ge=1, le=365)] = None,
                      who: Principal = Depends(reader), c: psycopg.Connection = Depends(db)) -> dict[str, Any]:
    customer = owner(who, customer_id)
    found(queries.shipment(c, customer, external_ref))
    valid = timedelta(days=days or request.app.state.settings.share_link_days)
    token, expires = share.sign(c, customer, external_ref, valid)
    return {"token": token, "url": f"{request.base_url}s/{token}", "expires_at": expires}


def shared(request: Request, token: Token) -> Principal:
    """The share token is the credential: read-only, one shipment, until it expires."""
    request.app.state.rate_limit.check("share:" + token[:24])
    with request.app.state.pool.connection() as c:
        try:
            link = share.verify(c, token)
        except share.ExpiredToken:
            raise HTTPException(410, "this share link has expired") from None
        except share.InvalidToken:
            raise HTTPException(404, "no such share link") from None
    request.state.shared_ref = link.external_ref
    return Principal("customer", link.customer_id, "share")


@router.get("/v1/shared/{token}", tags=["share"])
def get_shared(request: Request, who: Principal = Depends(shared)) -> dict[str, Any]:
    with tenant(request.app.state.read_pool, who) as c:
        return found(queries.shipment(c, who.customer_id or "", request.state.shared_ref))


@router.get("/v1/shared/{token}/trail", tags=["share"])
def get_shared_trail(request: Request, max_points: MaxPoints = 500,
                     who: Principal = Depends(shared)) -> dict[str, Any]:
    with tenant(request.app.state.read_pool, who) as c:
        return {"positions": found(queries.trail(c, who.customer_id or "", request.state.shared_ref, max_points))}


@router.get("/v1/shared/{token}/stream", tags=["share"], response_class=EventSourceResponse)
def stream_shared(request: Request, who: Principal = Depends(shared)) -> EventSourceResponse:
    return _stream(request, who, request.state.shared_ref)


def _stream(request: Request, who: Principal, external_ref: str) -> EventSourceResponse:
    with tenant(request.app.state.pool, who) as c:
        first = shipment_change(c, who.customer_id or "", external_ref)
    found(first.data or None)
    return EventSourceResponse(request.app.state.live.stream(who.customer_id, external_ref, [first]))
