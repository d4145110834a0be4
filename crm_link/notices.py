"""What a person is told of an outbox event, in the subscriber's language: a title, a few lines and a
link to the shipment's page, rendered at send time from the catalogues (locales). The channels
(crm_link/robots.py, crm_link/mail.py) only lay it out.

A customer-facing subscription's payload carries no evidence (migration 0007); what a shipper may read
of its shipment (the ETA, the delivery window, the destination's time zone) is read from the demand at
send time, so a message sent after a retry says the latest ETA.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from locales import text, when


@dataclass(frozen=True, slots=True)
class Notice:
    title: str
    lines: tuple[str, ...]
    link: str | None  # the shipment's page, when the installation's public address is known
    link_text: str


@dataclass(frozen=True, slots=True)
class Facts:
    """What the shipment says now: its ETA and window, the zone its times are read in, and the vehicle of
    the exception reported (staff payloads name the exception)."""

    eta: datetime | None
    delivery_to: datetime | None
    zone: str
    vehicle_id: str | None = None


def facts(conn: psycopg.Connection, customer_id: str | None, data: dict[str, Any], default_zone: str) -> Facts:
    row = conn.execute("SELECT d.eta, d.delivery_to, s.time_zone, "
                       "(SELECT vehicle_id FROM exceptions WHERE id = %s AND demand_id = d.id) FROM demands d "
                       "LEFT JOIN sites s ON s.id = d.destination_site_id WHERE d.customer_id = %s "
                       "AND d.external_ref = %s", (data.get("exception_id"), customer_id,
                                                   data["external_ref"])).fetchone()
    return Facts(row[0], row[1], row[2] or default_zone, row[3]) if row else Facts(None, None, default_zone)


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _late(ref: str, shipment: Facts, language: str) -> tuple[str, list[str]]:
    window = when(shipment.delivery_to, language, shipment.zone) if shipment.delivery_to else "–"
    line = (text("notify.late.line", language, eta=when(shipment.eta, language, shipment.zone), window=window)
            if shipment.eta else text("notify.late.no_eta", language, window=window))
    return text("notify.late.title", language, ref=ref), [line]


def _misload(ref: str, data: dict[str, Any], shipment: Facts, language: str) -> tuple[str, list[str]]:
    evidence = data.get("evidence")  # staff subscriptions only
    lines = [text("notify.misload.line", language)]
    if evidence:
        lines.append(text("notify.misload.evidence", language, epc=evidence.get("epc_uri", "?"),
                          door=evidence.get("read_point", "?"), vehicle=shipment.vehicle_id or "?",
                          planned=evidence.get("planned_vehicle_id", "?")))
    return text("notify.misload.title", language, ref=ref), lines


def _exception(event: str, ref: str, data: dict[str, Any], shipment: Facts,
               language: str) -> tuple[str, list[str]]:
    kind = text(f"exception.{data['type']}", language)
    if event == "exception.resolved":
        at = _instant(data.get("resolved_at"))
        return (text("notify.resolved.title", language, ref=ref, exception=kind),
                [text("notify.resolved.line", language, at=when(at, language, shipment.zone))] if at else [])
    if data["type"] == "late":
        return _late(ref, shipment, language)
    if data["type"] == "misload":
        return _misload(ref, data, shipment, language)
    opened = when(datetime.fromisoformat(data["opened_at"]), language, shipment.zone)
    return (text("notify.exception.title", language, ref=ref, exception=kind),
            [text("notify.exception.line", language, exception=kind, at=opened)])


def render(event: str, data: dict[str, Any], shipment: Facts, language: str, public_url: str | None) -> Notice:
    """The notice of one event's payload `data` (as the subscription's audience sees it)."""
    ref = data["external_ref"]
    if event == "shipment.status_changed":
        status = text(f"status.{data['status']}", language)
        title = text("notify.status.title", language, ref=ref, status=status)
        lines = [text("notify.status.line", language, status=status,
                      at=when(datetime.fromisoformat(data["at"]), language, shipment.zone))]
    elif event == "shipment.eta_changed":
        title = text("notify.eta.title", language, ref=ref)
        lines = [text("notify.eta.line", language, eta=when(datetime.fromisoformat(data["eta"]), language,
                                                              shipment.zone))]
    else:
        title, lines = _exception(event, ref, data, shipment, language)
    link = f"{public_url.rstrip('/')}/track/{ref}" if public_url else None
    return Notice(title, tuple(lines), link, text("notify.link", language))
