"""What a master-data record may say: customers, sites (doors, geofence), vehicles and gateways, each a
pydantic model the API, the CLI and the file import validate against. Ids travel beside the record."""

from __future__ import annotations

import dataclasses
import math
import zoneinfo
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)

from crm_link.thresholds import Thresholds
from storage.vocabulary import GATEWAY_KINDS, LANGUAGES

ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"  # as the API's path parameter
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=200)]
ReadPointId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}$")]
# A vehicle's own tag: a GIAI (asset) or GRAI (returnable asset) pure identity URI.
TAG_URI = r"^urn:epc:id:(giai|grai):[0-9A-Za-z.%-]{1,100}$"
# JT/T 808 terminal phone number (BCD, 11-12 digits; 20 in the 2019 edition) or a 15-digit IMEI.
TELEMATICS_ID = r"^[0-9]{11,20}$"
EARTH_RADIUS_M = 6_371_000.0


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error naming it, not silently lost


class _Overrides(Record):
    @model_serializer(mode="wrap")
    def _given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}  # what is not overridden is not said


# Per-customer overrides of the route-watch thresholds: only the names crm_link/thresholds.py knows.
ExceptionThresholds = create_model(  # type: ignore[call-overload]
    "ExceptionThresholds", __base__=_Overrides,
    **{f.name: (float | None, Field(None, gt=0, le=1e7)) for f in dataclasses.fields(Thresholds)})


class Customer(Record):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    service_level: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "standard"
    contact: dict[Annotated[str, StringConstraints(min_length=1, max_length=40)], Text] = Field(
        default_factory=dict, max_length=20, description="contact people and channels: name, phone, email, ...")
    language: Literal[LANGUAGES] = "zh-CN"  # type: ignore[valid-type]
    exception_thresholds: ExceptionThresholds = Field(default_factory=ExceptionThresholds)  # type: ignore[valid-type]


class Circle(Record):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(300.0, gt=0, le=50_000)


class Polygon(Record):
    """A GeoJSON Polygon: rings of [lon, lat], each closed (first point = last), the first the outline."""

    type: Literal["Polygon"]
    coordinates: list[Annotated[list[tuple[Annotated[float, Field(ge=-180, le=180)],
                                           Annotated[float, Field(ge=-90, le=90)]]],
                                Field(min_length=4, max_length=10_000)]] = Field(min_length=1, max_length=100)

    @field_validator("coordinates")
    @classmethod
    def _closed(cls, rings: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
        if any(ring[0] != ring[-1] for ring in rings):
            raise ValueError("each ring must end where it starts")
        return rings

    def enclosing_circle(self) -> Circle:
        """Centred on the outline's mean vertex, reaching its farthest one: for code that reads circles."""
        outline = self.coordinates[0][:-1]
        lon = sum(p[0] for p in outline) / len(outline)
        lat = sum(p[1] for p in outline) / len(outline)
        return Circle(lat=lat, lon=lon, radius_m=min(50_000.0, max(1.0, max(_metres(lat, lon, p[1], p[0])
                                                                           for p in outline))))


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dlat, dlon = math.radians(lat2 - lat1), math.radians(lon2 - lon1)
    a = math.sin(dlat / 2) ** 2 + math.cos(math.radians(lat1)) * math.cos(math.radians(lat2)) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class Site(Record):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    address: Annotated[str, StringConstraints(max_length=500)] = ""
    time_zone: str = Field("Asia/Shanghai", description="IANA time zone")
    geofence: Circle | Polygon
    doors: list[Identifier] = Field(default_factory=list, max_length=200,
                                    description="door ids; each is the read point `site_id/door_id`")
    gln: Annotated[str, StringConstraints(pattern=r"^[0-9]{13}$")] | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        if zone not in _time_zones():
            raise ValueError("not an IANA time zone (e.g. Asia/Shanghai)")
        return zone

    @field_validator("doors")
    @classmethod
    def _distinct(cls, doors: list[str]) -> list[str]:
        if len(set(doors)) != len(doors):
            raise ValueError("a door is listed twice")
        return doors


class Vehicle(Record):
    name: Text = ""
    plate: Annotated[str, StringConstraints(max_length=20)] = Field("", description="licence plate, e.g. 沪A12345")
    carrier: Text = ""
    tag_epc_uri: Annotated[str, StringConstraints(pattern=TAG_URI)] | None = None
    telematics_id: Annotated[str, StringConstraints(pattern=TELEMATICS_ID)] | None = None
    gateway_id: Identifier | None = Field(None, description="the vehicle or fleet gateway that carries its fixes")


class Gateway(Record):
    kind: Literal[GATEWAY_KINDS]  # type: ignore[valid-type]
    site_id: Identifier | None = Field(None, description="a dock gateway's site")
    vehicle_id: Identifier | None = Field(None, description="a vehicle gateway's vehicle")
    read_points: list[ReadPointId] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _mounted(self) -> Gateway:
        if (self.kind == "dock") != (self.site_id is not None):
            raise ValueError("site_id is required for a dock gateway and only for it")
        if (self.kind == "vehicle") != (self.vehicle_id is not None):
            raise ValueError("vehicle_id is required for a vehicle gateway and only for it")
        if self.kind == "dock" and any(not rp.startswith(f"{self.site_id}/") for rp in self.read_points):
            raise ValueError("a dock gateway's read points are doors of its site")
        return self
