"""The tracking API: customers see their own shipments, dispatchers the fleet, the CRM upserts demands."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import Field

from crm_link.demands import DemandRecord, UnknownReference, upsert_demand
from crm_link.status import STATUSES
from tracking_api.http import problems, queries
from tracking_api.http.auth import require
from tracking_api.keys import Principal
from tracking_api.settings import Settings

Ref = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
HEALTH_TIMEOUT_S = 3.0
VehicleId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class DemandUpsert(DemandRecord):
    customer_id: str = Field(min_length=1, max_length=64, description="the customer who owns the demand")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with ConnectionPool(settings.database_url, min_size=1, max_size=10, open=True) as pool:  # type: ignore[arg-type]
            app.state.pool = pool
            yield

    app = FastAPI(title="cargotrace tracking API", version="1.0", lifespan=lifespan)
    problems.install(app)

    def conn(request: Request) -> Any:
        with request.app.state.pool.connection() as c:
            yield c

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request) -> dict[str, str]:
        try:
            with request.app.state.pool.connection(timeout=HEALTH_TIMEOUT_S) as c:
                c.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout):
            raise HTTPException(503, "the database does not answer") from None
        return {"status": "ok", "database": "ok"}

    @app.put("/v1/demands/{external_ref}", tags=["integration"], status_code=200)
    def put_demand(external_ref: Ref, body: DemandUpsert, response: Response, c: Any = Depends(conn),
                   who: Principal = Depends(require("integration", "admin"))) -> dict[str, Any]:
        if not queries.customer_exists(c, body.customer_id):
            raise HTTPException(422, f"unknown customer: {body.customer_id}")
        try:
            _, created = upsert_demand(c, body.customer_id, external_ref, body)
        except (UnknownReference, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        response.status_code = 201 if created else 200
        return {"external_ref": external_ref, "customer_id": body.customer_id, "created": created}

    def owner(who: Principal, customer_id: str | None) -> str:
        """Customers see their own; dispatchers and admins name the customer."""
        if who.role == "customer":
            return who.customer_id or ""
        if not customer_id:
            raise HTTPException(422, "customer_id is required for this role")
        return customer_id

    @app.get("/v1/shipments/{external_ref}", tags=["customer"])
    def get_shipment(external_ref: Ref, customer_id: str | None = None, c: Any = Depends(conn),
                     who: Principal = Depends(require("customer", "dispatcher", "admin"))) -> dict[str, Any]:
        found = queries.shipment(c, owner(who, customer_id), external_ref)
        if found is None:  # also for another customer's shipment: existence is not confirmed
            raise HTTPException(404, "no such shipment")
        return found

    @app.get("/v1/shipments", tags=["customer"])
    def list_shipments(status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")] = None,
                       after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                       limit: Annotated[int, Query(ge=1, le=500)] = 100,
                       customer_id: str | None = None, c: Any = Depends(conn),
                       who: Principal = Depends(require("customer", "dispatcher", "admin"))) -> dict[str, Any]:
        rows = queries.shipments(c, owner(who, customer_id), status, after, limit)
        cursor = rows[-1].pop("id") if len(rows) == limit else None
        for row in rows:
            row.pop("id", None)
        return {"shipments": rows, "next_after": cursor}

    @app.get("/v1/vehicles/{vehicle_id}/position", tags=["dispatcher"])
    def vehicle_position(vehicle_id: VehicleId, c: Any = Depends(conn),
                         who: Principal = Depends(require("dispatcher", "admin"))) -> dict[str, Any]:
        found = queries.last_position(c, vehicle_id)
        if found is None:
            raise HTTPException(404, "no position for this vehicle")
        return {"vehicle_id": vehicle_id, **found}

    return app
