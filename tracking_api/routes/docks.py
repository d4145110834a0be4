"""Dock doors: a dispatcher puts a vehicle at a door, which the correlator trusts after the vehicle's
own tag read there and before fixes inside the site (crm_link/docks.py)."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tracking_api import queries, writes
from tracking_api.auth import require
from tracking_api.deps import db
from tracking_api.keys import Principal
from tracking_api.models import DockAssignment
from tracking_api.params import Id
from tracking_api.refusal import Refusal

router = APIRouter(tags=["dispatcher"])
staff = require("dispatcher", "admin")


class NewDockAssignment(BaseModel):
    model_config = ConfigDict(extra="ignore")
    vehicle_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", examples=["TRK-042"])
    valid_from: AwareDatetime | None = Field(None, description="default: now")
    valid_to: AwareDatetime | None = Field(None, description="default: until replaced")


@router.put("/v1/docks/{site_id}/{door_id}/assignment", status_code=201, response_model=DockAssignment,
            description="Put a vehicle at a dock door: the correlator trusts it after the vehicle's own tag read "
                        "there and before fixes inside the site.")
def assign_dock(site_id: Id, door_id: Id, body: NewDockAssignment, who: Principal = Depends(staff),
                c: psycopg.Connection = Depends(db)) -> Any:
    if not queries.door_exists(c, site_id, door_id):
        raise Refusal(404, "problem.no_such.dock_door")
    if not queries.vehicle_exists(c, body.vehicle_id):
        raise Refusal(422, "problem.unknown_vehicle", vehicle=body.vehicle_id)
    if body.valid_from and body.valid_to and body.valid_to <= body.valid_from:
        raise Refusal(422, "problem.valid_to")
    return writes.assign_dock(c, site_id, door_id, body.vehicle_id, body.valid_from, body.valid_to,
                              f"key:{who.prefix}")
