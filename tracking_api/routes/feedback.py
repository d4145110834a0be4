"""Customer feedback on a shipment: a rating, a complaint, a damage report or an inquiry. It feeds the
customer record's "inquiries and feedback" block and the complaint, damage and satisfaction KPIs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator

from storage.vocabulary import FEEDBACK_KINDS
from tracking_api import writes
from tracking_api.auth import owner, shipment_reader
from tracking_api.deps import db
from tracking_api.keys import Principal
from tracking_api.models import FeedbackReceipt
from tracking_api.params import CustomerId, Ref
from tracking_api.problems import found

router = APIRouter(tags=["customer"])


class Feedback(BaseModel):
    # Unknown fields (customer_id, status, demand_id...) are ignored: owner and shipment come from
    # the key and the path.
    model_config = ConfigDict(extra="ignore")
    kind: Literal[FEEDBACK_KINDS]  # type: ignore[valid-type]
    rating: Annotated[int | None, Field(ge=1, le=5, description="1-5; required for a rating")] = None
    text: str = Field("", max_length=4000, examples=["two cartons crushed on pallet 3"])

    @model_validator(mode="after")
    def _rating_for_ratings(self) -> Feedback:
        if (self.kind == "rating") != (self.rating is not None):
            raise ValueError("a rating needs `rating` (1-5), and only a rating has one")
        if self.kind != "rating" and not self.text.strip():
            raise ValueError(f"a {self.kind} needs a `text`")
        return self


@router.post("/v1/shipments/{external_ref}/feedback", status_code=201, response_model=FeedbackReceipt)
def post_feedback(external_ref: Ref, body: Feedback, customer_id: CustomerId = None,
                  who: Principal = Depends(shipment_reader), c: psycopg.Connection = Depends(db)) -> Any:
    return found(writes.add_feedback(c, owner(who, customer_id), external_ref, body.kind, body.rating, body.text),
                 "shipment")
