"""The whole path as separate processes on the real broker and database:
serial bytes → gateways → Mosquitto → ingest → PostgreSQL → CRM link → API."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from common import epc
from crm_link.directory import upsert_customer, upsert_site, upsert_vehicle
from device_drivers.simulators import drive, open_pty_pair, portal_passage
from launcher.embedded import free_port, wait_for_port
from tests.helpers import Processes, wait_for
from tracking_api.keys import create_key

WAREHOUSE = (31.2304, 121.4737)
CUSTOMER_SITE = (31.2404, 121.4837)  # ~1.5 km away
PALLETS = [epc.sgtin_uri("0614141", "812345", serial) for serial in (101, 102, 103)]


def _profile(path: Path, gateway_id: str, mqtt_url: str, **devices: object) -> str:
    path.write_text(yaml.safe_dump({"gateway": {"id": gateway_id, "broker": mqtt_url,
                                                "outbox": str(path.with_suffix(".sqlite")),
                                                "smoothing": {"absent_s": 0.5}}, **devices}))
    return str(path)


def _reader(name: str, port: str, read_point: str) -> dict:
    return {"name": name, "protocol": "thingmagic-mercury", "port": port,
            "antennas": [{"port": 1, "read_point": read_point, "side": "outer"},
                         {"port": 2, "read_point": read_point, "side": "inner"}]}


@pytest.fixture
def system(tmp_path: Path, db_url: str, mqtt_url: str) -> Iterator[dict]:
    with psycopg.connect(db_url) as conn:
        upsert_customer(conn, "acme", "ACME Trading")
        upsert_customer(conn, "globex", "Globex")
        upsert_site(conn, "wh-sh1", "Warehouse Shanghai 1", *WAREHOUSE, 300, doors=["door-03"])
        upsert_site(conn, "acme-pd", "ACME Pudong DC", *CUSTOMER_SITE, 250, doors=["door-01"])
        upsert_vehicle(conn, "TRK-042")
        keys = {"acme": create_key(conn, "customer", "acme"), "globex": create_key(conn, "customer", "globex"),
                "crm": create_key(conn, "integration")}
    unique = uuid.uuid4().hex[:8]
    ptys = {name: open_pty_pair() for name in ("origin", "destination", "gps")}
    dock = _profile(tmp_path / "dock.yaml", f"dock-{unique}", mqtt_url,
                    readers=[_reader("wh-door-03", ptys["origin"][1], "wh-sh1/door-03"),
                             _reader("acme-door-01", ptys["destination"][1], "acme-pd/door-01")])
    truck = _profile(tmp_path / "truck.yaml", f"truck-{unique}", mqtt_url,
                     gps={"port": ptys["gps"][1], "vehicle": "TRK-042"})
    port = free_port()
    env = {**os.environ, "CARGOTRACE_DATABASE_URL": db_url, "CARGOTRACE_MQTT_URL": mqtt_url,
           "CARGOTRACE_INGEST_CLIENT_ID": f"ingest-{unique}", "CARGOTRACE_INGEST_SHARED_GROUP": f"g{unique}",
           "CARGOTRACE_CRM_POLL_SECONDS": "0.5"}
    procs = Processes(env, tmp_path)
    for name, args in {"ingest": ["ingest"], "crm": ["crm", "run"], "api": ["api", "--port", str(port)],
                       "dock": ["gateway", "--config", dock], "truck": ["gateway", "--config", truck]}.items():
        procs.start(name, *args)
    try:
        wait_for_port(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield {"client": client, "keys": keys, "fds": {k: v[0] for k, v in ptys.items()}, "procs": procs}
    finally:
        procs.stop()
        for fd, _ in ptys.values():
            os.close(fd)


def test_a_pallet_shipment_goes_from_pending_to_delivered_and_only_its_owner_sees_it(system: dict) -> None:
    client, keys, fds, procs = system["client"], system["keys"], system["fds"], system["procs"]

    def auth(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[who]}"}

    def status() -> str:
        procs.check_alive()
        return client.get("/v1/shipments/SO-7001", headers=auth("acme")).json()["status"]

    demand = {"customer_id": "acme", "origin_site_id": "wh-sh1", "destination": {"site_id": "acme-pd"},
              "vehicle_id": "TRK-042", "items": [{"epc_uri": uri} for uri in PALLETS]}
    assert client.put("/v1/demands/SO-7001", json=demand, headers=auth("crm")).status_code == 201
    assert status() == "pending"

    tags = [epc.encode(uri, filter_=6) for uri in PALLETS]
    # Pallets pass the door again until the gateway (a separate process) has its port open, as
    # tags lingering in a portal are read again and again.
    wait_for(lambda: os.write(fds["origin"], portal_passage(tags, outer=1, inner=2, outward=True))
             and status() == "loaded", timeout=60, interval=1.0, what="loaded")
    for epoch in drive([WAREHOUSE, CUSTOMER_SITE], speed_kmh=90, start=datetime.now(UTC)):
        os.write(fds["gps"], epoch)
    wait_for(lambda: status() == "arrived", timeout=60, interval=0.5, what="arrived")
    wait_for(lambda: os.write(fds["destination"], portal_passage(tags, outer=1, inner=2, outward=False))
             and status() == "delivered", timeout=60, interval=1.0, what="delivered")

    shipment = client.get("/v1/shipments/SO-7001", headers=auth("acme")).json()
    assert [e["status"] for e in shipment["timeline"]] == ["loading", "loaded", "in_transit", "arrived", "delivered"]
    assert shipment["items"] == {"total": 3, "loaded": 3, "delivered": 3}
    assert shipment["status_word"] == "Delivered"
    arrived = next(e for e in shipment["timeline"] if e["status"] == "arrived")
    assert abs(arrived["lat"] - CUSTOMER_SITE[0]) < 0.01  # where it arrived, inside the customer's geofence
    assert shipment["last_position"] is None  # once delivered, the truck's whereabouts are no longer shown
    other = client.get("/v1/shipments/SO-7001", headers=auth("globex"))
    assert other.status_code == 404 and "acme" not in other.text
