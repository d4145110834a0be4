"""The order of the shipment statuses (storage/vocabulary.py) and what customers and EPCIS see of them."""

from __future__ import annotations

from storage.vocabulary import STATUSES

RANK = {s: i for i, s in enumerate(STATUSES)}

# GS1 CBV business step of each transition, for EPCIS 2.0 export.
BIZ_STEP = {"loading": "loading", "loaded": "loading", "in_transit": "departing", "arrived": "arriving",
            "delivered": "receiving"}

# The words shippers know from parcel tracking (AfterShip's tags) and a code one-to-one with the
# internal statuses, in the style of AfterShip's sub-tags (tag_NNN).
CUSTOMER_WORD = {"pending": "InfoReceived", "loading": "InfoReceived", "loaded": "InfoReceived",
                 "in_transit": "InTransit", "arrived": "OutForDelivery", "delivered": "Delivered"}
CUSTOMER_SUBTAG = {"pending": "InfoReceived_001", "loading": "InfoReceived_002", "loaded": "InfoReceived_003",
                   "in_transit": "InTransit_001", "arrived": "OutForDelivery_001", "delivered": "Delivered_001"}
