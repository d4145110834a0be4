"""A customer's shipments: the list, one with its timeline, its vehicle's trail, and share links."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from storage.vocabulary import STATUSES
from tracking_api import queries, share, wording
from tracking_api.auth import owner, shipment_reader
from tracking_api.deps import db, db_read
from tracking_api.keys import Principal
from tracking_api.language import Lang
from tracking_api.models import Positions, ShareLink, Shipment, ShipmentPage
from tracking_api.params import After, CustomerFilter, CustomerId, Limit, MaxPoints, Ref
from tracking_api.problems import found

router = APIRouter(tags=["customer"])


@router.get("/v1/shipments", response_model=ShipmentPage)
def list_shipments(language: Lang,
                   status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")] = None,
                   since: Annotated[AwareDatetime | None, Query(description="created at or after")] = None,
                   until: Annotated[AwareDatetime | None, Query(description="created before")] = None,
                   attention: Annotated[Literal["late", "exception"] | None, Query(
                       description="only the late ones, or those with an unresolved exception")] = None,
                   after: After = 0, limit: Limit = 100,
                   customer_id: CustomerFilter = None,
                   who: Principal = Depends(shipment_reader), c: psycopg.Connection = Depends(db_read)) -> Any:
    customer = owner(who, customer_id) if who.role == "customer" or customer_id else None
    rows = queries.shipments(c, customer, status, since, until, attention, after, limit)
    cursor = rows[-1]["id"] if len(rows) == limit else None
    return {"shipments": [wording.shipment({k: v for k, v in row.items() if k != "id"}, language) for row in rows],
            "next_after": cursor}


@router.get("/v1/shipments/{external_ref}", response_model=Shipment)
def get_shipment(language: Lang, external_ref: Ref, customer_id: CustomerId = None,
                 who: Principal = Depends(shipment_reader), c: psycopg.Connection = Depends(db_read)) -> Any:
    return wording.shipment(found(queries.shipment(c, owner(who, customer_id), external_ref), "shipment"), language)


@router.get("/v1/shipments/{external_ref}/trail", response_model=Positions)
def get_trail(external_ref: Ref, customer_id: CustomerId = None, max_points: MaxPoints = 500,
              who: Principal = Depends(shipment_reader), c: psycopg.Connection = Depends(db_read)) -> Any:
    return {"positions": found(queries.trail(c, owner(who, customer_id), external_ref, max_points), "shipment")}


@router.post("/v1/shipments/{external_ref}/share", status_code=201, response_model=ShareLink)
def create_share_link(request: Request, external_ref: Ref, customer_id: CustomerId = None,
                      days: Annotated[int | None, Query(ge=1, le=365)] = None,
                      who: Principal = Depends(shipment_reader), c: psycopg.Connection = Depends(db)) -> Any:
    customer = owner(who, customer_id)
    found(queries.shipment(c, customer, external_ref), "shipment")
    valid = timedelta(days=days or request.app.state.settings.share_link_days)
    token, expires = share.sign(c, customer, external_ref, valid)
    return {"token": token, "url": f"{request.base_url}s/{token}", "expires_at": expires}
