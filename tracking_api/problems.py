"""Errors as RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from crm_link.master_data import Invalid, Referenced
from tracking_api.models import Problem

PROBLEM = "application/problem+json"
T = TypeVar("T")


def problem(status: int, title: str, detail: str | None = None, headers: dict[str, str] | None = None,
            **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, **extra}
    if detail:
        body["detail"] = detail
    headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def found(value: T | None, what: str) -> T:
    """The value, or 404 "no such ..." (also for another customer's: existence is not confirmed)."""
    if value is None:
        raise HTTPException(404, f"no such {what}")
    return value


def documented(description: str) -> dict[str, Any]:
    """An error answer as the OpenAPI document describes it: problem details."""
    return {"description": description, "content": {PROBLEM: {"schema": Problem.model_json_schema()}}}


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        titles = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                  409: "Conflict", 410: "Gone", 422: "Unprocessable Content", 429: "Too Many Requests",
                  503: "Service Unavailable"}
        return problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail), exc.headers)

    @app.exception_handler(psycopg.DataError)
    async def bad_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # A value the schema let through but PostgreSQL cannot hold (a NUL byte in text, say): the
        # client's input, not a server fault.
        return problem(422, "Unprocessable Content", f"a value cannot be stored: {exc.diag.message_primary or exc}")

    @app.exception_handler(Invalid)
    async def invalid_reference(request: Request, exc: Invalid) -> JSONResponse:
        return problem(422, "Unprocessable Content", str(exc), errors=[{"loc": ["body", exc.field], "msg": exc.reason}])

    @app.exception_handler(Referenced)
    async def still_referenced(request: Request, exc: Referenced) -> JSONResponse:
        return problem(409, "Conflict", str(exc), references=exc.references)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return problem(422, "Unprocessable Content", "the request does not match the schema", errors=errors)
