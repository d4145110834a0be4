"""A shipment's timeline as a GS1 EPCIS 2.0 document (JSON-LD): one ObjectEvent per status reached.

Where: door events (loading, loaded, delivered) are read at the door's read point inside its site;
departing is reported at the origin site and arriving at the destination site. Identifiers are the
SGLN URNs in read_points.sgln / sites.gln where set; otherwise a location URI of our own,
`urn:cargotrace:location:<site>[/<door>]`, which CBV 2.0 allows for locations without a GLN.
Times are UTC (offset +00:00): the records hold no local time zone of a site.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import psycopg

from crm_link.status import BIZ_STEP

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"

_EVENTS = """
SELECT e.status, e.ts, coalesce(rp.site_id, CASE e.status WHEN 'in_transit' THEN d.origin_site_id
                                                             ELSE coalesce(e.place, d.destination_site_id) END),
       rp.door_id, rp.sgln
FROM shipment_events e JOIN demands d ON d.id = e.demand_id
LEFT JOIN read_points rp ON rp.id = e.place
WHERE d.customer_id = %s AND d.external_ref = %s ORDER BY e.ts, e.id
"""


def _location(site: str | None, door: str | None, urn: str | None) -> dict[str, str] | None:
    if urn:
        return {"id": urn}
    if not site:
        return None
    return {"id": "urn:cargotrace:location:" + quote(site, safe="") + (f"/{quote(door, safe='')}" if door else "")}


def _time(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shipment_document(conn: psycopg.Connection, customer_id: str, external_ref: str,
                      now: datetime | None = None) -> dict[str, Any] | None:
    """The EPCIS document of one shipment, or None when the customer has no such shipment."""
    found = conn.execute("SELECT id FROM demands WHERE customer_id = %s AND external_ref = %s",
                         (customer_id, external_ref)).fetchone()
    if found is None:
        return None
    epcs = [r[0] for r in conn.execute("SELECT epc_uri FROM demand_items WHERE demand_id = %s ORDER BY epc_uri",
                                       (found[0],))]
    sites = dict(conn.execute("SELECT id, gln FROM sites").fetchall())
    events = []
    for status, ts, site, door, sgln in conn.execute(_EVENTS, (customer_id, external_ref)):
        if status not in BIZ_STEP:
            continue
        event: dict[str, Any] = {
            "type": "ObjectEvent",
            # Stable: the same shipment status always exports under the same id.
            "eventID": "ni:///sha-256;" + hashlib.sha256(f"{customer_id}\0{external_ref}\0{status}".encode())
            .hexdigest() + "?ver=CBV2.0",
            "eventTime": _time(ts), "eventTimeZoneOffset": "+00:00", "action": "OBSERVE",
            "bizStep": BIZ_STEP[status], "epcList": epcs}
        read_point = _location(site, door, sgln) if door else _location(site, None, sites.get(site))
        biz_location = _location(site, None, sites.get(site))
        if read_point:
            event["readPoint"] = read_point
        if biz_location:
            event["bizLocation"] = biz_location
        events.append(event)
    return {"@context": [CONTEXT], "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": _time(now or datetime.now(UTC)), "epcisBody": {"eventList": events}}
