"""Live updates as Server-Sent Events: a shipment's (for its owner or its share link) and every change
(for dispatchers). Each stream starts with the current state, then follows tracking_api/live.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sse_starlette import EventSourceResponse

from tracking_api.auth import owner, require, shipment_reader
from tracking_api.deps import shared, tenant
from tracking_api.keys import Principal
from tracking_api.language import Lang, SharedLang
from tracking_api.live import shipment_change
from tracking_api.params import CustomerId, Ref
from tracking_api.problems import found

router = APIRouter(tags=["live"])
SHIPMENT_EVENTS = ("Server-Sent Events: `status` (the shipment, first its current state), `position` of its vehicle "
                   "while it carries the shipment, `exception` (customer-visible ones).")


@router.get("/v1/shipments/{external_ref}/stream", response_class=EventSourceResponse, description=SHIPMENT_EVENTS)
def stream_shipment(language: Lang, request: Request, external_ref: Ref, customer_id: CustomerId = None,
                    who: Principal = Depends(shipment_reader)) -> EventSourceResponse:
    return _shipment_stream(request, Principal(who.role, owner(who, customer_id), who.prefix), external_ref, language)


@router.get("/v1/shared/{token}/stream", response_class=EventSourceResponse, description=SHIPMENT_EVENTS)
def stream_shared(language: SharedLang, request: Request, who: Principal = Depends(shared)) -> EventSourceResponse:
    return _shipment_stream(request, who, request.state.shared_ref, language)


@router.get("/v1/stream", response_class=EventSourceResponse,
            description="Server-Sent Events of every change: `status` (a shipment), `position` (a vehicle's newest "
                        "fix), `exception` (opened, acknowledged, resolved).")
def stream_all(language: Lang, request: Request,
               who: Principal = Depends(require("dispatcher", "admin"))) -> EventSourceResponse:
    return EventSourceResponse(request.app.state.live.stream(None, None, [], language),
                               headers={"Content-Language": language})


def _shipment_stream(request: Request, who: Principal, external_ref: str, language: str) -> EventSourceResponse:
    with tenant(request.app.state.pool, who) as c:
        first = shipment_change(c, who.customer_id or "", external_ref)
    found(first.data or None, "shipment")
    return EventSourceResponse(request.app.state.live.stream(who.customer_id, external_ref, [first], language),
                               headers={"Content-Language": language})
