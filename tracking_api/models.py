"""What the API answers, as pydantic models: every JSON endpoint declares one, so /openapi.json
describes every answer, and the live stream's events are encoded by the same models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, create_model

from crm_link import master_records
from crm_link.kpis import KPI_COLUMNS
from storage.vocabulary import (
    AUDIENCES,
    DELIVERY_STATES,
    ETA_METHODS,
    EXCEPTION_STATES,
    EXCEPTION_TYPES,
    FEEDBACK_KINDS,
    LANGUAGES,
    NOTIFICATION_CHANNELS,
    STATUSES,
    WEBHOOK_EVENTS,
)

# ISO 8601 with the offset written out (+00:00), as the API has always written times.
Instant = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")]
Status = Literal[STATUSES]  # type: ignore[valid-type]
ExceptionType = Literal[EXCEPTION_TYPES]  # type: ignore[valid-type]
ExceptionState = Literal[EXCEPTION_STATES]  # type: ignore[valid-type]
Json = dict[str, Any]
# The ETA's band and how it was made (crm_link/eta_model.py); null where no ETA was made since they exist.
EtaP10 = Annotated[Instant | None, Field(description="the arrival is later than this in 9 of 10 cases")]
EtaP90 = Annotated[Instant | None, Field(description="the arrival is earlier than this in 9 of 10 cases")]
EtaMethod = Annotated[Literal[ETA_METHODS] | None, Field(  # type: ignore[valid-type]
    description="speed: distance over recent speed; profile: the fleet's speeds piece by piece; past_trips: "
                "the nearest past trips; blend: both")]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Position(Answer):
    ts: Instant
    lat: float
    lon: float
    speed_kmh: float | None
    course_deg: float | None


class Positions(Answer):
    positions: list[Position]


class VehiclePosition(Position):
    vehicle_id: str


class VehiclePositions(Positions):
    vehicle_id: str


class Items(Answer):
    total: int
    loaded: int
    delivered: int


class TimelineEntry(Answer):
    status: Status
    status_text: str = Field(description="the status as a consignee reads it, in the answer's language")
    ts: Instant
    biz_step: str | None
    place: str | None
    lat: float | None
    lon: float | None


class ShipmentException(Answer):
    """What a shipper sees of an open exception: its kind and state, not the evidence."""

    type: ExceptionType
    type_text: str = Field(description="the kind in the answer's language")
    state: ExceptionState
    state_text: str = Field(description="the state in the answer's language")
    opened_at: Instant


class ShipmentSummary(Answer):
    customer_id: str
    external_ref: str
    status: Status
    status_text: str = Field(description="the status as a consignee reads it, in the answer's language")
    status_word: str = Field(description="the AfterShip tag shippers know (InfoReceived, InTransit, ...)")
    status_subtag: str
    status_at: Instant
    vehicle_id: str | None
    delivery_to: Instant | None
    eta: Instant | None
    eta_p10: EtaP10 = None
    eta_p90: EtaP90 = None
    eta_method: EtaMethod = None


class ShipmentPage(Answer):
    shipments: list[ShipmentSummary]
    next_after: int | None = Field(description="pass back as `after` for the next page; null on the last")


class Place(Answer):
    site_id: str | None
    name: str | None
    geofence: master_records.Circle | master_records.Polygon


class Shipment(ShipmentSummary):
    origin_site_id: str | None
    destination_site_id: str | None
    destination_lat: float | None
    destination_lon: float | None
    destination_radius_m: float | None
    pickup_from: Instant | None
    pickup_to: Instant | None
    delivery_from: Instant | None
    rush: bool
    service_level: str
    planned_route: Json | None = Field(description="GeoJSON LineString")
    eta_computed_at: Instant | None
    created_at: Instant
    updated_at: Instant
    items: Items
    timeline: list[TimelineEntry]
    exceptions: list[ShipmentException]
    last_position: Position | None = Field(description="the vehicle's last fix while it carries the shipment")
    customer_language: Literal["zh-CN", "en"] | None = Field(
        None, description="the customer's configured language: the pages' last choice after the user's and the "
                          "browser's")
    time_zone: str = Field("Asia/Shanghai", description="IANA zone the shipment's times are shown in: its "
                                                        "destination site's, else its origin's")
    origin: Place | None = Field(None, description="where it is loaded: the origin site")
    destination: Place | None = Field(None, description="where it goes: the destination site, or the demand's "
                                                        "own point, with the geofence arrival is judged by")
    vehicle_plate: str | None = Field(None, description="the licence plate of the vehicle carrying it")


class ShareLink(Answer):
    token: str
    url: str
    expires_at: Instant


class FeedbackReceipt(Answer):
    id: int
    external_ref: str
    kind: Literal[FEEDBACK_KINDS]  # type: ignore[valid-type]
    rating: int | None
    created_at: Instant


class DemandReceipt(Answer):
    external_ref: str
    customer_id: str
    created: bool


class RouteException(Answer):
    id: int
    type: ExceptionType
    type_text: str = Field(description="the kind in the answer's language")
    state: ExceptionState
    state_text: str = Field(description="the state in the answer's language")
    opened_at: Instant
    acknowledged_at: Instant | None
    resolved_at: Instant | None
    note: str | None
    evidence: Json
    vehicle_id: str | None
    external_ref: str | None
    customer_id: str | None


class ExceptionPage(Answer):
    exceptions: list[RouteException]
    next_after: int | None


class ExceptionNotice(ShipmentException):
    """An exception event of a shipper's live stream."""

    external_ref: str | None


class Destination(Answer):
    lat: float | None
    lon: float | None
    radius_m: float | None
    site_id: str | None = Field(None, description="the destination site, when it is one")


class Trip(Answer):
    external_ref: str
    customer_id: str
    status: Status
    planned_route: Json | None
    eta: Instant | None
    eta_p10: EtaP10 = None
    eta_p90: EtaP90 = None
    eta_method: EtaMethod = None
    destination: Destination


# Master data as stored: the record as written (crm_link/master_records.py) with its id.
class CustomerData(master_records.Customer):
    id: str


class SiteData(master_records.Site):
    id: str


class VehicleData(master_records.Vehicle):
    id: str


class GatewayData(master_records.Gateway):
    id: str


class CustomerList(Answer):
    customers: list[CustomerData]
    next_after: str | None = Field(description="pass back as `after` for the next page; null on the last")


class SiteList(Answer):
    sites: list[SiteData]
    next_after: str | None = Field(description="pass back as `after` for the next page; null on the last")


class GatewayList(Answer):
    gateways: list[GatewayData]
    next_after: str | None = Field(description="pass back as `after` for the next page; null on the last")


class Vehicle(VehicleData):
    last_position: Position | None
    trips: list[Trip] = Field(description="its demands not yet delivered")


class Vehicles(Answer):
    vehicles: list[Vehicle]
    next_after: str | None = Field(description="pass back as `after` for the next page; null on the last")


class DockAssignment(Answer):
    id: int
    site_id: str
    door_id: str
    vehicle_id: str
    valid_from: Instant
    valid_to: Instant | None


class Subscription(Answer):
    id: int
    customer_id: str | None
    audience: Literal[AUDIENCES]  # type: ignore[valid-type]
    channel: Literal[NOTIFICATION_CHANNELS]  # type: ignore[valid-type]
    url: str | None = Field(description="a robot's key or token is shown as *** (null for email)")
    email: str | None
    language: Literal[LANGUAGES] | None = Field(description="null: the customer's language")  # type: ignore[valid-type]
    event_types: list[Literal[WEBHOOK_EVENTS]]  # type: ignore[valid-type]
    active: bool
    disabled_reason: str | None
    eta_threshold_s: int
    created_at: Instant


class NewSubscriptionAnswer(Subscription):
    secret: str | None = Field(description="a webhook's signing secret (Standard Webhooks), shown only in this answer; "
                                           "null for the other channels (a robot's secret is never shown)")


class Subscriptions(Answer):
    webhooks: list[Subscription]


class Delivery(Answer):
    id: int
    subscription_id: int
    webhook_id: str
    event_type: str
    state: Literal[DELIVERY_STATES]  # type: ignore[valid-type]
    attempts: int
    next_attempt_at: Instant
    last_status: int | None
    last_error: str | None
    created_at: Instant
    payload: Json


class DeliveryPage(Answer):
    deliveries: list[Delivery]
    next_after: int | None


class Resent(Answer):
    id: int
    state: Literal["pending"]


# A KPI is a rate, a count or a mean; null when the period holds nothing to judge it on (docs/crm.md).
Kpis = create_model("Kpis", __base__=Answer, **{
    name: (float | None, None) for name in (*KPI_COLUMNS, *(f"exceptions_{kind}" for kind in EXCEPTION_TYPES),
                                            "satisfaction")})


class Satisfaction(Answer):
    from_: Instant = Field(alias="from")
    to: Instant
    satisfaction: float | None


class CustomerKpis(Answer):
    customer_id: str
    from_: Instant = Field(alias="from")
    to: Instant
    kpis: Kpis  # type: ignore[valid-type]
    satisfaction_trend: list[Satisfaction]


class AbcClass(Answer):
    customer_id: str
    volume: int
    share: float
    cumulative_share: float
    class_: Literal["A", "B", "C"] = Field(alias="class")


class AbcClasses(Answer):
    customers: list[AbcClass]


class AtRisk(Answer):
    customer_id: str
    volume: float
    baseline: float
    change: float
    reason: str


class AtRiskCustomers(Answer):
    customers: list[AtRisk]


class CustomerBasics(Answer):
    id: str
    name: str
    service_level: str
    contact: Json
    language: str
    exception_thresholds: Json
    created_at: Instant


class FeedbackEntry(Answer):
    id: int
    kind: Literal[FEEDBACK_KINDS]  # type: ignore[valid-type]
    rating: int | None
    text: str
    created_at: Instant
    external_ref: str | None


class DemandLine(Answer):
    external_ref: str
    status: Status
    status_at: Instant
    delivery_to: Instant | None
    eta: Instant | None
    eta_p10: EtaP10 = None
    eta_p90: EtaP90 = None
    eta_method: EtaMethod = None
    vehicle_id: str | None
    rush: bool
    service_level: str


class DemandChange(Answer):
    external_ref: str
    changed_at: Instant
    changes: Json


class CustomerRecord(Answer):
    """The customer record's four blocks."""

    basic: CustomerBasics
    inquiries_and_feedback: list[FeedbackEntry]
    logistics_demand: list[DemandLine]
    demand_changes: list[DemandChange]


class EpcisDocument(BaseModel):
    """A GS1 EPCIS 2.0 document (JSON-LD); its events follow the EPCIS 2.0 JSON schema."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    context: list[str] = Field(alias="@context")
    type: Literal["EPCISDocument"]
    schemaVersion: str
    creationDate: str
    epcisBody: Json


class Health(Answer):
    status: Literal["ok"]
    database: Literal["ok"]
    live: bool = Field(description="this process listens for live updates")
    broker: Literal["ok"] | None = None


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[Json] | None = Field(None, description="what in the request does not match the schema")
    references: dict[str, list[str]] | None = Field(None, description="409: who still names the record, by kind")
