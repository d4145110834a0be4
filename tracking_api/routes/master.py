"""Master data: PUT (idempotent upsert), GET, DELETE and keyset-paged lists of customers, sites,
vehicles and gateways, all through crm_link/master_data.py. Admin and integration keys write; staff
read; a customer reads its own customer record only (row-level security hides the others)."""

# No `from __future__ import annotations`: the routes are built in a loop and FastAPI reads each one's
# body and answer types from the annotations at definition time.
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel

from crm_link import master_data
from crm_link.master_records import ID_PATTERN, Customer, Gateway, Record, Site, Vehicle
from tracking_api.auth import require
from tracking_api.deps import db, db_read
from tracking_api.keys import Principal
from tracking_api.models import CustomerData, CustomerList, GatewayData, GatewayList, SiteData, SiteList, VehicleData
from tracking_api.params import AfterId, Limit
from tracking_api.problems import found
from tracking_api.refusal import Refusal

router = APIRouter(tags=["master data"])
writer = require("integration", "admin")
staff = require("dispatcher", "integration", "admin")
anyone = require("customer", "dispatcher", "integration", "admin")


def page(c: psycopg.Connection, kind: str, after: str, limit: int) -> dict[str, Any]:
    rows = master_data.page(c, kind, after, limit)
    return {kind: rows, "next_after": rows[-1]["id"] if len(rows) == limit else None}


def resource(kind: str, body: type[Record], answer: type[BaseModel], listing: type[BaseModel] | None,
             reader: Any, get_one: bool = True) -> None:
    """PUT, DELETE and (unless an older route answers them) GET one and GET list of `kind`."""
    singular = kind[:-1]
    path = f"/v1/{kind}/{{{singular}_id}}"
    RecordId = Annotated[str, Path(alias=f"{singular}_id", pattern=ID_PATTERN)]

    @router.put(path, status_code=200, response_model=answer, name=f"put_{singular}",
                responses={201: {"model": answer, "description": "created"}},
                description=f"Create or replace the {singular}: sending the same record again changes nothing. "
                            "201 when created.")
    def put(record_id: RecordId, record: body, response: Response,  # type: ignore[valid-type]
            who: Principal = Depends(writer), c: psycopg.Connection = Depends(db)) -> Any:
        stored, created = master_data.put(c, kind, record_id, record)
        response.status_code = 201 if created else 200
        return stored

    @router.delete(path, status_code=204, response_class=Response, name=f"delete_{singular}",
                   description=f"409 while other records name the {singular} (listed under `references`).")
    def delete(record_id: RecordId, who: Principal = Depends(writer), c: psycopg.Connection = Depends(db)) -> Response:
        if not master_data.remove(c, kind, record_id):
            raise Refusal(404, f"problem.no_such.{singular}")
        return Response(status_code=204)

    if get_one:
        @router.get(path, response_model=answer, name=f"get_{singular}")
        def get(record_id: RecordId, who: Principal = Depends(reader),
                c: psycopg.Connection = Depends(db_read)) -> Any:
            return found(master_data.get(c, kind, record_id), singular)

    if listing is not None:
        @router.get(f"/v1/{kind}", response_model=listing, name=f"list_{kind}",
                    description=f"{kind.capitalize()} in id order; pass `next_after` back as `after`.")
        def list_all(after: AfterId = "", limit: Limit = 100, who: Principal = Depends(reader),
                     c: psycopg.Connection = Depends(db_read)) -> Any:
            return page(c, kind, after, limit)


# GET /v1/customers/{id} is the customer record (routes/customers.py; its `basic` block is this master
# data) and GET /v1/vehicles the fleet view with the same fields (routes/vehicles.py).
resource("customers", Customer, CustomerData, CustomerList, anyone, get_one=False)
resource("sites", Site, SiteData, SiteList, staff)
resource("vehicles", Vehicle, VehicleData, None, staff)
resource("gateways", Gateway, GatewayData, GatewayList, staff)
