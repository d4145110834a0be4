"""Logistics-demand records: validation, idempotent upsert keyed on (customer, external reference),
and their history (demand dynamics)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from crm_link.identifiers import gtin_serial_to_uri, sscc_to_uri, uri_problem

URI_PATTERN = r"^urn:epc:id:(sgtin|sscc|grai|giai|sgln|gid):[0-9A-Za-z.%-]+$"


class Item(BaseModel):
    """One cargo item: an EPC pure identity URI, or an SSCC / GTIN + serial that maps to one."""

    model_config = ConfigDict(extra="forbid")
    epc_uri: str | None = Field(None, pattern=URI_PATTERN)
    sscc: str | None = None
    gtin: str | None = None
    serial: str | None = None
    company_prefix_length: int | None = Field(None, ge=6, le=12)
    quantity: int = Field(1, ge=1, le=100_000)
    _uri: str = PrivateAttr("")

    @field_validator("epc_uri")
    @classmethod
    def _well_formed(cls, uri: str | None) -> str | None:
        if uri is not None and (problem := uri_problem(uri)):
            raise ValueError(problem)  # e.g. a serial left out: no tag could ever carry it
        return uri

    @model_validator(mode="after")
    def _one_identity(self) -> Item:
        given = [self.epc_uri is not None, self.sscc is not None, self.gtin is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of epc_uri, sscc, or gtin with serial")
        if (self.sscc or self.gtin) and self.company_prefix_length is None:
            raise ValueError("sscc and gtin need company_prefix_length to map to an EPC")
        if self.gtin is not None and self.serial is None:
            raise ValueError("gtin needs a serial")
        # Mapped here so a wrong check digit or an unencodable serial is a validation error.
        if self.sscc:
            self._uri = sscc_to_uri(self.sscc, self.company_prefix_length or 0)
        elif self.gtin:
            self._uri = gtin_serial_to_uri(self.gtin, self.serial or "", self.company_prefix_length or 0)
        else:
            self._uri = self.epc_uri or ""
        return self

    @property
    def uri(self) -> str:
        """The EPC pure identity URI the tag of this item carries."""
        return self._uri


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: str | None = None
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    radius_m: float | None = Field(None, gt=0, le=50_000)

    @model_validator(mode="after")
    def _site_or_point(self) -> Destination:
        if self.site_id is None and (self.lat is None or self.lon is None):
            raise ValueError("a destination is a site_id or a point (lat, lon, radius_m)")
        return self


class LineString(BaseModel):
    type: Literal["LineString"]
    coordinates: list[tuple[float, float]] = Field(min_length=2, max_length=10_000)


class DemandRecord(BaseModel):
    """What a CRM or an integrator sends. Status and owner are never taken from here."""

    model_config = ConfigDict(extra="ignore")  # unknown fields (status, id, ...) are ignored, not trusted
    origin_site_id: str = Field(min_length=1, max_length=64)
    destination: Destination
    pickup_from: datetime | None = None
    pickup_to: datetime | None = None
    delivery_from: datetime | None = None
    delivery_to: datetime | None = None
    rush: bool = False
    service_level: str = Field("standard", max_length=32)
    vehicle_id: str | None = Field(None, max_length=64)
    planned_route: LineString | None = None
    items: list[Item] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _windows(self) -> DemandRecord:
        for start, end, name in ((self.pickup_from, self.pickup_to, "pickup"),
                                 (self.delivery_from, self.delivery_to, "delivery")):
            if start and end and start > end:
                raise ValueError(f"{name} window ends before it starts")
            if (start and start.tzinfo is None) or (end and end.tzinfo is None):
                raise ValueError(f"{name} window times need a time zone")
        return self


class UnknownReference(ValueError):
    """The record names a site or vehicle the system does not know."""


_FIELDS = ("origin_site_id", "destination_site_id", "destination_lat", "destination_lon", "destination_radius_m",
           "pickup_from", "pickup_to", "delivery_from", "delivery_to", "rush", "service_level", "vehicle_id",
           "planned_route")


def _columns(record: DemandRecord) -> dict[str, Any]:
    d = record.destination
    return {"origin_site_id": record.origin_site_id, "destination_site_id": d.site_id, "destination_lat": d.lat,
            "destination_lon": d.lon, "destination_radius_m": d.radius_m, "pickup_from": record.pickup_from,
            "pickup_to": record.pickup_to, "delivery_from": record.delivery_from, "delivery_to": record.delivery_to,
            "rush": record.rush, "service_level": record.service_level, "vehicle_id": record.vehicle_id,
            "planned_route": json.dumps(record.planned_route.model_dump()) if record.planned_route else None}


def _check_references(conn: psycopg.Connection, record: DemandRecord) -> None:
    sites = {record.origin_site_id} | ({record.destination.site_id} if record.destination.site_id else set())
    known = {r[0] for r in conn.execute("SELECT id FROM sites WHERE id = ANY(%s)", (list(sites),))}
    if sites - known:
        raise UnknownReference(f"unknown site: {', '.join(sorted(sites - known))}")
    if record.vehicle_id and not conn.execute("SELECT 1 FROM vehicles WHERE id = %s", (record.vehicle_id,)).fetchone():
        raise UnknownReference(f"unknown vehicle: {record.vehicle_id}")


def upsert_demand(conn: psycopg.Connection, customer_id: str, external_ref: str,
                  record: DemandRecord) -> tuple[int, bool]:
    """Create or update (customer_id, external_ref); a re-sent identical record changes nothing.
    Returns (demand id, created). Changes of an existing record go to demand_history."""
    _check_references(conn, record)
    items = {item.uri: item.quantity for item in record.items}
    new = _columns(record)
    with conn.transaction():
        row = conn.execute(f"SELECT id, {', '.join(_FIELDS)} FROM demands WHERE customer_id = %s AND external_ref = %s "
                           "FOR UPDATE", (customer_id, external_ref)).fetchone()
        if row is None:
            demand_id = conn.execute(
                f"INSERT INTO demands (customer_id, external_ref, {', '.join(_FIELDS)}) "
                f"VALUES (%s, %s, {', '.join(['%s'] * len(_FIELDS))}) RETURNING id",
                (customer_id, external_ref, *new.values())).fetchone()[0]
            _replace_items(conn, demand_id, items)
            return demand_id, True
        demand_id, old = row[0], dict(zip(_FIELDS, row[1:], strict=True))
        old["planned_route"] = json.dumps(old["planned_route"]) if old["planned_route"] is not None else None
        changes = {k: {"from": _plain(old[k]), "to": _plain(v)} for k, v in new.items() if _plain(old[k]) != _plain(v)}
        old_items = dict(conn.execute("SELECT epc_uri, expected_qty FROM demand_items WHERE demand_id = %s",
                                      (demand_id,)).fetchall())
        if old_items != items:
            changes["items"] = {"from": old_items, "to": items}
        if changes:
            conn.execute(f"UPDATE demands SET {', '.join(f'{k} = %s' for k in new)}, updated_at = now() WHERE id = %s",
                         (*new.values(), demand_id))
            _replace_items(conn, demand_id, items)
            conn.execute("INSERT INTO demand_history (demand_id, changes) VALUES (%s, %s)",
                         (demand_id, json.dumps(changes)))
        return demand_id, False


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):  # in UTC: the same instant sent with another offset is no change
        return value.astimezone(UTC).isoformat()
    if isinstance(value, str) and value.startswith("{"):
        return json.loads(value)
    return value


def _replace_items(conn: psycopg.Connection, demand_id: int, items: dict[str, int]) -> None:
    """Keep the progress (loaded_at, delivered_at) of items that stay."""
    conn.execute("DELETE FROM demand_items WHERE demand_id = %s AND NOT (epc_uri = ANY(%s))", (demand_id, list(items)))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO demand_items (demand_id, epc_uri, expected_qty) VALUES (%s, %s, %s) "
                        "ON CONFLICT (demand_id, epc_uri) DO UPDATE SET expected_qty = excluded.expected_qty",
                        [(demand_id, uri, qty) for uri, qty in items.items()])
