"""A shipment's timeline as a GS1 EPCIS 2.0 document, for the CRM and for customers' own systems."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from crm_link.epcis import shipment_document
from tracking_api.auth import owner, require
from tracking_api.deps import db_read
from tracking_api.keys import Principal
from tracking_api.models import EpcisDocument
from tracking_api.params import CustomerId, Ref
from tracking_api.problems import found

router = APIRouter(tags=["customer"])


class JsonLd(JSONResponse):
    media_type = "application/ld+json"


@router.get("/v1/shipments/{external_ref}/epcis", response_model=EpcisDocument, response_class=JsonLd)
def get_epcis(external_ref: Ref, customer_id: CustomerId = None,
              who: Principal = Depends(require("customer", "dispatcher", "integration", "admin")),
              c: psycopg.Connection = Depends(db_read)) -> Any:
    return found(shipment_document(c, owner(who, customer_id), external_ref), "shipment")
