"""The fleet for dispatchers: every vehicle with its last fix and current trips, and one vehicle's track."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from tracking_api import queries
from tracking_api.auth import require
from tracking_api.deps import db_read
from tracking_api.keys import Principal
from tracking_api.models import VehiclePosition, VehiclePositions, Vehicles
from tracking_api.params import AfterId, Id, Limit
from tracking_api.problems import found
from tracking_api.refusal import Refusal

router = APIRouter(tags=["dispatcher"])
staff = require("dispatcher", "admin")
MAX_RANGE = timedelta(days=31)


@router.get("/v1/vehicles", response_model=Vehicles)
def list_vehicles(after: AfterId = "", limit: Limit = 500, who: Principal = Depends(staff),
                  c: psycopg.Connection = Depends(db_read)) -> Any:
    """The fleet in id order: master data, last fix, current trips. Pass `next_after` back as `after`."""
    rows = queries.vehicles(c, after, limit)
    return {"vehicles": rows, "next_after": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/v1/vehicles/{vehicle_id}/position", response_model=VehiclePosition)
def vehicle_position(vehicle_id: Id, who: Principal = Depends(staff),
                     c: psycopg.Connection = Depends(db_read)) -> Any:
    return {"vehicle_id": vehicle_id, **found(queries.last_position(c, vehicle_id), "position")}


@router.get("/v1/vehicles/{vehicle_id}/positions", response_model=VehiclePositions)
def vehicle_positions(vehicle_id: Id, since: Annotated[AwareDatetime, Query(alias="from")],
                      until: Annotated[AwareDatetime, Query(alias="to")],
                      max_points: Annotated[int, Query(ge=2, le=5000)] = 1000,
                      who: Principal = Depends(staff), c: psycopg.Connection = Depends(db_read)) -> Any:
    if not timedelta(0) < until - since <= MAX_RANGE:
        raise Refusal(422, "problem.period", days=MAX_RANGE.days)
    return {"vehicle_id": vehicle_id, "positions": queries.positions(c, vehicle_id, since, until, max_points)}
