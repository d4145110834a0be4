"""Two customers with one shipment each, on one truck each, plus a key per role: the world API tests run in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from crm_link.demands import DemandRecord, upsert_demand
from crm_link.directory import upsert_customer, upsert_site, upsert_vehicle
from tracking_api.keys import create_key

ROUTE = {"type": "LineString", "coordinates": [[121.47, 31.23], [121.51, 31.26], [121.55, 31.30]]}


def demand(vehicle: str, epc: str) -> DemandRecord:
    return DemandRecord.model_validate({
        "origin_site_id": "wh-sh1", "destination": {"site_id": "dc-pd"}, "vehicle_id": vehicle,
        "planned_route": ROUTE, "items": [{"epc_uri": epc}]})


@dataclass
class World:
    db_url: str
    keys: dict[str, str]
    epc: dict[str, str] = field(default_factory=lambda: {"acme": "urn:epc:id:sgtin:0614141.812345.1",
                                                         "globex": "urn:epc:id:sgtin:0614141.812345.2"})
    exception_ids: dict[str, int] = field(default_factory=dict)

    def headers(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"} if who else {}

    def call(self, client: TestClient, method: str, path: str, who: str | None, **kw: Any) -> Any:
        return client.request(method, path, headers=self.headers(who), **kw)


def build(db_url: str) -> World:
    """acme owns SO-A1 on TRK-A, globex owns SO-G1 on TRK-G; each shipment has an open `late` exception."""
    with psycopg.connect(db_url) as conn:
        upsert_customer(conn, "acme", "ACME Trading")
        upsert_customer(conn, "globex", "Globex")
        upsert_site(conn, "wh-sh1", "Warehouse", 31.23, 121.47, doors=["door-03"])
        upsert_site(conn, "dc-pd", "Distribution centre", 31.30, 121.55, doors=["door-01"])
        keys = {"acme": create_key(conn, "customer", "acme"), "globex": create_key(conn, "customer", "globex"),
                "dispatcher": create_key(conn, "dispatcher"), "crm": create_key(conn, "integration"),
                "admin": create_key(conn, "admin")}
        world = World(db_url, keys)
        for customer, ref, vehicle in (("acme", "SO-A1", "TRK-A"), ("globex", "SO-G1", "TRK-G")):
            upsert_vehicle(conn, vehicle)
            demand_id, _ = upsert_demand(conn, customer, ref, demand(vehicle, world.epc[customer]))
            world.exception_ids[customer] = conn.execute(
                "INSERT INTO exceptions (demand_id, vehicle_id, type, opened_at, evidence) "
                "VALUES (%s, %s, 'late', now(), '{\"eta\": \"tomorrow\"}') RETURNING id",
                (demand_id, vehicle)).fetchone()[0]
            conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon) "
                         "VALUES (%s, 1, now() - interval '1 minute', %s, 31.25, 121.5)", (f"gw-{vehicle}", vehicle))
    return world
