"""The dispatchers' exception queue: list, look at, acknowledge and resolve route exceptions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from storage.vocabulary import EXCEPTION_STATES, EXCEPTION_TYPES
from tracking_api import queries, wording, writes
from tracking_api.auth import require
from tracking_api.deps import db, db_read
from tracking_api.keys import Principal
from tracking_api.language import Lang
from tracking_api.models import ExceptionPage, RouteException
from tracking_api.params import After, Limit
from tracking_api.problems import found
from tracking_api.refusal import Refusal, Word

router = APIRouter(tags=["dispatcher"])
staff = require("dispatcher", "admin")
ExceptionId = Annotated[int, Path(ge=1, le=2**62)]


class Note(BaseModel):
    model_config = ConfigDict(extra="ignore")
    note: str | None = Field(None, max_length=2000, examples=["called the driver: road closure, detour"])


@router.get("/v1/exceptions", response_model=ExceptionPage)
def list_exceptions(language: Lang,
                    state: Annotated[Literal[EXCEPTION_STATES] | None, Query()] = None,  # type: ignore[valid-type]
                    type: Annotated[Literal[EXCEPTION_TYPES] | None, Query()] = None,  # type: ignore[valid-type]
                    customer_id: Annotated[str | None, Query(max_length=64)] = None,
                    vehicle_id: Annotated[str | None, Query(max_length=64)] = None,
                    after: After = 0, limit: Limit = 100,
                    who: Principal = Depends(staff), c: psycopg.Connection = Depends(db_read)) -> Any:
    rows = queries.exceptions(c, state, type, customer_id, vehicle_id, after=after, limit=limit)
    return {"exceptions": [wording.exception(row, language) for row in rows],
            "next_after": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/v1/exceptions/{exception_id}", response_model=RouteException)
def get_exception(language: Lang, exception_id: ExceptionId, who: Principal = Depends(staff),
                  c: psycopg.Connection = Depends(db_read)) -> Any:
    return wording.exception(found(queries.exception(c, exception_id), "exception"), language)


def _move(c: psycopg.Connection, exception_id: int, to: str, allowed_from: tuple[str, ...],
          note: str | None, language: str) -> dict[str, Any]:
    if not writes.move_exception(c, exception_id, to, allowed_from, note):
        current = found(queries.exception(c, exception_id), "exception")
        raise Refusal(409, "problem.exception_state", state=Word(f"state.{current['state']}"))
    return wording.exception(found(queries.exception(c, exception_id), "exception"), language)


@router.post("/v1/exceptions/{exception_id}/acknowledge", response_model=RouteException)
def acknowledge(language: Lang, exception_id: ExceptionId, body: Note | None = None,
                who: Principal = Depends(staff), c: psycopg.Connection = Depends(db)) -> Any:
    return _move(c, exception_id, "acknowledged", ("open",), body and body.note, language)


@router.post("/v1/exceptions/{exception_id}/resolve", response_model=RouteException)
def resolve(language: Lang, exception_id: ExceptionId, body: Note | None = None,
            who: Principal = Depends(staff), c: psycopg.Connection = Depends(db)) -> Any:
    return _move(c, exception_id, "resolved", ("open", "acknowledged"), body and body.note, language)
