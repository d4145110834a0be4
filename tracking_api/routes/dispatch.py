"""Dispatcher endpoints: the exception queue, vehicles and their positions, and the live stream of all changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from storage.vocabulary import EXCEPTION_STATES, EXCEPTION_TYPES
from tracking_api import queries
from tracking_api.auth import require
from tracking_api.deps import db, db_read
from tracking_api.keys import Principal
from tracking_api.params import Id

router = APIRouter(tags=["dispatcher"])
staff = require("dispatcher", "admin")
VehicleId = Id
ExceptionId = Annotated[int, Path(ge=1, le=2**62)]
MAX_RANGE = timedelta(days=31)


class Note(BaseModel):
    model_config = ConfigDict(extra="ignore")
    note: str | None = Field(None, max_length=2000, examples=["called the driver: road closure, detour"])


@router.get("/v1/exceptions")
def list_exceptions(state: Annotated[Literal[EXCEPTION_STATES] | None, Query()] = None,
                    type: Annotated[Literal[EXCEPTION_TYPES] | None, Query()] = None,  # type: ignore[valid-type]
                    customer_id: Annotated[str | None, Query(max_length=64)] = None,
                    vehicle_id: Annotated[str | None, Query(max_length=64)] = None,
                    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100,
                    who: Principal = Depends(staff), c: psycopg.Connection = Depends(db_read)) -> dict[str, Any]:
    rows = queries.exceptions(c, state, type, customer_id, vehicle_id, after=after, limit=limit)
    return {"exceptions": rows, "next_after": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/v1/exceptions/{exception_id}")
def get_exception(exception_id: ExceptionId, who: Principal = Depends(staff),
                  c: psycopg.Connection = Depends(db_read)) -> dict[str, Any]:
    rows = queries.exceptions(c, exception_id=exception_id, limit=1)
    if not rows:
        raise HTTPException(404, "no such exception")
    return rows[0]


def _move(c: psycopg.Connection, exception_id: int, to: str, allowed_from: tuple[str, ...], note: str | None) -> dict:
    stamp = "acknowledged_at" if to == "acknowledged" else "resolved_at"
    row = c.execute(f"UPDATE exceptions SET state = %s, {stamp} = now(), note = coalesce(%s, note) "
                    "WHERE id = %s AND state = ANY(%s) RETURNING id", (to, note, exception_id, list(allowed_from)))
    if row.fetchone() is None:
        current = queries.exceptions(c, exception_id=exception_id, limit=1)
        if not current:
            raise HTTPException(404, "no such exception")
        raise HTTPException(409, f"the exception is {current[0]['state']}")
    return queries.exceptions(c, exception_id=exception_id, limit=1)[0]


@router.post("/v1/exceptions/{exception_id}/acknowledge")
def acknowledge(exception_id: ExceptionId, body: Note | None = None, who: Principal = Depends(staff),
                c: psycopg.Connection = Depends(db)) -> dict[str, Any]:
    return _move(c, exception_id, "acknowledged", ("open",), body and body.note)


@router.post("/v1/exceptions/{exception_id}/resolve")
def resolve(exception_id: ExceptionId, body: Note | None = None, who: Principal = Depends(staff),
            c: psycopg.Connection = Depends(db)) -> dict[str, Any]:
    return _move(c, exception_id, "resolved", ("open", "acknowledged"), body and body.note)


@router.get("/v1/vehicles")
def list_vehicles(who: Principal = Depends(staff), c: psycopg.Connection = Depends(db_read)) -> dict[str, Any]:
    return {"vehicles": queries.vehicles(c)}


@router.get("/v1/vehicles/{vehicle_id}/position")
def vehicle_position(vehicle_id: VehicleId, who: Principal = Depends(staff),
                     c: psycopg.Connection = Depends(db_read)) -> dict[str, Any]:
    found = queries.last_position(c, vehicle_id)
    if found is None:
        raise HTTPException(404, "no position for this vehicle")
    return {"vehicle_id": vehicle_id, **found}


@router.get("/v1/vehicles/{vehicle_id}/positions")
def vehicle_positions(vehicle_id: VehicleId, since: Annotated[AwareDatetime, Query(alias="from")],
                      until: Annotated[AwareDatetime, Query(alias="to")],
                      max_points: Annotated[int, Query(ge=2, le=5000)] = 1000,
                      who: Principal = Depends(staff), c: psycopg.Connection = Depends(db_read)) -> dict[str, Any]:
    if not timedelta(0) < until - since <= MAX_RANGE:
        raise HTTPException(422, f"`to` must be after `from`, at most {MAX_RANGE.days} days later")
    return {"vehicle_id": vehicle_id, "positions": queries.positions(c, vehicle_id, since, until, max_points)}


@router.get("/v1/stream", response_class=EventSourceResponse,
            description="Server-Sent Events of every change: `status` (a shipment), `position` (a vehicle's newest "
                        "fix), `exception` (opened, acknowledged, resolved).")
def stream_all(request: Request, who: Principal = Depends(staff)) -> EventSourceResponse:
    return EventSourceResponse(request.app.state.live.stream(None, None, []))


class DockAssignment(BaseModel):
    model_config = ConfigDict(extra="ignore")
    vehicle_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", examples=["TRK-042"])
    valid_from: AwareDatetime | None = Field(None, description="default: now")
    valid_to: AwareDatetime | None = Field(None, description="default: until replaced")


SiteId = DoorId = Id


@router.put("/v1/docks/{site_id}/{door_id}/assignment", status_code=201,
            description="Put a vehicle at a dock door: the correlator trusts it after the vehicle's own tag read "
                        "there and before fixes inside the site.")
def assign_dock(site_id: SiteId, door_id: DoorId, body: DockAssignment, who: Principal = Depends(staff),
                c: psycopg.Connection = Depends(db)) -> dict[str, Any]:
    if c.execute("SELECT 1 FROM read_points WHERE site_id = %s AND door_id = %s", (site_id, door_id)).fetchone() \
            is None:
        raise HTTPException(404, "no such dock door")
    if c.execute("SELECT 1 FROM vehicles WHERE id = %s", (body.vehicle_id,)).fetchone() is None:
        raise HTTPException(422, f"unknown vehicle: {body.vehicle_id}")
    if body.valid_from and body.valid_to and body.valid_to <= body.valid_from:
        raise HTTPException(422, "valid_to must be after valid_from")
    row = c.execute(
        "INSERT INTO dock_assignments (site_id, door_id, vehicle_id, valid_from, valid_to, assigned_by) "
        "VALUES (%s, %s, %s, coalesce(%s, now()), %s, %s) RETURNING id, valid_from, valid_to",
        (site_id, door_id, body.vehicle_id, body.valid_from, body.valid_to, f"key:{who.prefix}")).fetchone()
    return {"id": row[0], "site_id": site_id, "door_id": door_id, "vehicle_id": body.vehicle_id,
            "valid_from": row[1], "valid_to": row[2]}
