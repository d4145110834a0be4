"""Errors as RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, TypeVar

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from crm_link.master_data import Invalid, Referenced
from locales import text
from locales.catalogue import has
from tracking_api.language import spoken
from tracking_api.models import Problem
from tracking_api.refusal import Refusal, Word

PROBLEM = "application/problem+json"
T = TypeVar("T")


def title(status: int, language: str) -> str:
    key = f"problem.title.{status}"
    return text(key if has(key, language) else "problem.title.other", language)


def problem(request: Request, status: int, detail: str | None = None, headers: dict[str, str] | None = None,
            **extra: object) -> JSONResponse:
    """Problem details in the request's language (tracking_api/language.py), which Content-Language names."""
    language = spoken(request)
    body = {"type": "about:blank", "title": title(status, language), "status": status, **extra}
    if detail:
        body["detail"] = detail
    headers = {**(headers or {}), "Content-Language": language,
               **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def said(request: Request, key: str, **params: object) -> str:
    """A catalogue text in the request's language; parameters that are Words are said in it too."""
    language = spoken(request)
    return text(key, language, **{k: text(v.key, language) if isinstance(v, Word) else v for k, v in params.items()})


def found(value: T | None, what: str) -> T:
    """The value, or 404 "no such ..." (also for another customer's: existence is not confirmed); `what`
    names the thing as the catalogue does (problem.no_such.<what>)."""
    if value is None:
        raise Refusal(404, f"problem.no_such.{what}")
    return value


def documented(description: str) -> dict[str, Any]:
    """An error answer as the OpenAPI document describes it: problem details."""
    return {"description": description, "content": {PROBLEM: {"schema": Problem.model_json_schema()}}}


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc, Refusal):
            detail = said(request, exc.key, **exc.params)
        elif exc.detail == HTTPStatus(exc.status_code).phrase:  # the framework's own: an unknown path, method
            detail = title(exc.status_code, spoken(request))
        else:
            detail = str(exc.detail)
        return problem(request, exc.status_code, detail, exc.headers)

    @app.exception_handler(psycopg.DataError)
    async def bad_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # A value the schema let through but PostgreSQL cannot hold (a NUL byte in text, say): the
        # client's input, not a server fault.
        return problem(request, 422, said(request, "problem.unstorable", reason=exc.diag.message_primary or exc))

    @app.exception_handler(Invalid)
    async def invalid_reference(request: Request, exc: Invalid) -> JSONResponse:
        return problem(request, 422, str(exc), errors=[{"loc": ["body", exc.field], "msg": exc.reason}])

    @app.exception_handler(Referenced)
    async def still_referenced(request: Request, exc: Referenced) -> JSONResponse:
        return problem(request, 409, str(exc), references=exc.references)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return problem(request, 422, said(request, "problem.schema"), errors=errors)
