"""A shipment's timeline as a GS1 EPCIS 2.0 document, for the CRM and for customers' own systems."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse

from crm_link.epcis import shipment_document
from tracking_api.auth import require
from tracking_api.deps import db_read
from tracking_api.keys import Principal
from tracking_api.params import Ref
from tracking_api.routes.shipments import CustomerId, owner

router = APIRouter(tags=["customer"])


@router.get("/v1/shipments/{external_ref}/epcis", response_class=JSONResponse,
            responses={200: {"content": {"application/ld+json": {}}}})
def get_epcis(external_ref: Ref, customer_id: CustomerId = None,
              who: Principal = Depends(require("customer", "dispatcher", "integration", "admin")),
              c: psycopg.Connection = Depends(db_read)) -> JSONResponse:
    document = shipment_document(c, owner(who, customer_id), external_ref)
    if document is None:
        raise HTTPException(404, "no such shipment")
    return JSONResponse(document, media_type="application/ld+json")
