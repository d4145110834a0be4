"""The words the database stores and the channels it speaks on, each written here once.

The migrations' CHECK constraints, triggers and NOTIFY calls are tested against these tuples
(tests/test_storage_vocabulary.py): a new word here needs a migration, and a migration that adds
one fails the test until it is added here.
"""

from __future__ import annotations

# Shipment status of a demand record, in order (ARCHITECTURE §6).
STATUSES = ("pending", "loading", "loaded", "in_transit", "arrived", "delivered")

# Route exceptions (ARCHITECTURE §6), each with whether the shipper sees it; the others are the
# dispatcher's business (evidence and notes are never shown to shippers).
EXCEPTIONS: dict[str, bool] = {
    "misload": True,
    "missing_cargo": True,
    "off_route": False,
    "unplanned_stop": False,
    "late": True,
    "gps_silence": False,
    "wrong_destination": True,
    "emergency": False,  # a terminal's SOS alarm
}
EXCEPTION_TYPES = tuple(EXCEPTIONS)
CUSTOMER_VISIBLE_EXCEPTIONS = tuple(kind for kind, visible in EXCEPTIONS.items() if visible)
EXCEPTION_STATES = ("open", "acknowledged", "resolved")

# Who an API key speaks for.
ROLES = ("customer", "dispatcher", "integration", "admin")

FEEDBACK_KINDS = ("rating", "complaint", "damage", "inquiry")

# Master data: the language a customer is written to in, and what an edge gateway is mounted on.
LANGUAGES = ("zh-CN", "en")
GATEWAY_KINDS = ("dock", "vehicle", "fleet")  # a dock door, one truck, a telematics endpoint for many

# Outbound webhooks: what a subscriber can ask for, and where a delivery is.
WEBHOOK_EVENTS = ("shipment.status_changed", "shipment.eta_changed", "exception.opened", "exception.resolved")
DELIVERY_STATES = ("pending", "delivered", "dead")
# Whom a subscription speaks to: the customer (what the API shows it) or the 3PL's own staff (everything).
AUDIENCES = ("customer", "staff")
# How a subscription is delivered: Standard Webhooks JSON for systems, or a message for people in a WeCom,
# DingTalk or Feishu/Lark group (their robots) or by email.
NOTIFICATION_CHANNELS = ("webhook", "wecom", "dingtalk", "feishu", "email")

# How an ETA was made (crm_link/eta_model.py): today's distance over the recent speed (the fall-back), the
# fleet's speed profile piece by piece, the nearest past trips, or a blend of the last two.
ETA_METHODS = ("speed", "profile", "past_trips", "blend")

# The correlator's work is split into partitions that several `crm run` processes share: fixes by
# vehicle, observations by read point (a dock door: a pallet passage there concerns the same few
# demands and the truck at that door, so processes do not wait on each other's demands, and the door's
# evidence stays in one place). A row's partition is the first byte of its key's md5 modulo the count
# (the SQL function cargotrace_partition of migration 0013). Each partition of each table read in
# commit order has a durable cursor in consumer_cursors, `status:<table>:<n>`.
PARTITIONS = 16
PARTITION_KEY = {"tag_observations": "read_point", "positions": "vehicle_id"}


def correlator_cursor(table: str, partition: int) -> str:
    """The name of the status correlation's cursor over a partition of a source table."""
    return f"status:{table}:{partition}"


PROFILE_CURSOR = "speed_profile:positions"  # the speed history's fold of new fixes

# LISTEN/NOTIFY channels.
EVENTS_CHANNEL = "cargotrace_events"  # ingest committed observations or fixes: {"vehicles", "read_points"}
STATUS_CHANNEL = "cargotrace_status"  # the correlator changed a demand's status or exceptions: its id
EXCEPTIONS_CHANNEL = "cargotrace_exceptions"  # an exception row was written (trigger, 0004): {"id"}
CHANNELS = (EVENTS_CHANNEL, STATUS_CHANNEL, EXCEPTIONS_CHANNEL)
