"""A shipment opened by its share link: read-only, without an API key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from tracking_api import queries, wording
from tracking_api.deps import shared, tenant
from tracking_api.keys import Principal
from tracking_api.language import SharedLang
from tracking_api.models import Positions, Shipment
from tracking_api.params import MaxPoints
from tracking_api.problems import found

router = APIRouter(tags=["share"])


@router.get("/v1/shared/{token}", response_model=Shipment)
def get_shared(language: SharedLang, request: Request, who: Principal = Depends(shared)) -> Any:
    with tenant(request.app.state.read_pool, who) as c:
        return wording.shipment(found(queries.shipment(c, who.customer_id or "", request.state.shared_ref),
                                      "shipment"), language)


@router.get("/v1/shared/{token}/trail", response_model=Positions)
def get_shared_trail(request: Request, max_points: MaxPoints = 500, who: Principal = Depends(shared)) -> Any:
    with tenant(request.app.state.read_pool, who) as c:
        return {"positions": found(queries.trail(c, who.customer_id or "", request.state.shared_ref, max_points),
                                   "shipment")}
