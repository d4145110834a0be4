"""Integration endpoints: the CRM upserts logistics-demand records."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import Field

from crm_link.demands import DemandRecord, UnknownReference, upsert_demand
from tracking_api import queries
from tracking_api.auth import require
from tracking_api.deps import db
from tracking_api.keys import Principal
from tracking_api.models import DemandReceipt
from tracking_api.params import Ref
from tracking_api.refusal import Refusal

router = APIRouter(tags=["integration"])


class DemandUpsert(DemandRecord):
    customer_id: str = Field(min_length=1, max_length=64, description="the customer who owns the demand")


@router.put("/v1/demands/{external_ref}", status_code=200, response_model=DemandReceipt,
            responses={201: {"model": DemandReceipt, "description": "created"}},
            description="Idempotent on (customer_id, external_ref): re-sending a record changes nothing; "
                        "a changed one is kept in the demand's history. 201 when created.")
def put_demand(external_ref: Ref, body: DemandUpsert, response: Response,
               who: Principal = Depends(require("integration", "admin")),
               c: psycopg.Connection = Depends(db)) -> Any:
    if not queries.customer_exists(c, body.customer_id):
        raise Refusal(422, "problem.unknown_customer", customer=body.customer_id)
    try:
        _, created = upsert_demand(c, body.customer_id, external_ref, body)
    except (UnknownReference, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    response.status_code = 201 if created else 200
    return {"external_ref": external_ref, "customer_id": body.customer_id, "created": created}
