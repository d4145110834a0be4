"""`cargotrace up --demo`: sample customers and demand records, simulated dock-door readers and a truck
speaking the real wire protocols on pseudo-terminals, read by real gateways. A shipment goes from
`pending` to `delivered` in about two minutes, and every status change is printed."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import yaml

from common import epc
from crm_link.demands import DemandRecord, upsert_demand
from crm_link.directory import upsert_customer, upsert_site, upsert_vehicle
from device_drivers.simulators import drive, open_pty_pair, portal_passage
from tracking_api.keys import create_key

WAREHOUSE = (31.2304, 121.4737)
ROUTE = [WAREHOUSE, (31.2330, 121.4790), (31.2372, 121.4801), (31.2404, 121.4837)]
CUSTOMER_SITE = ROUTE[-1]
SPEED_KMH = 60.0


def _seed(conn: psycopg.Connection, ref: str) -> list[str]:
    upsert_customer(conn, "acme", "ACME Trading Co.", "express", {"email": "logistics@acme.example"})
    upsert_customer(conn, "globex", "Globex Corporation")
    upsert_site(conn, "wh-sh1", "Warehouse Shanghai 1", *WAREHOUSE, 300, doors=["door-03", "door-04"])
    upsert_site(conn, "acme-pd", "ACME Pudong DC", *CUSTOMER_SITE, 200, doors=["door-01"])
    upsert_vehicle(conn, "TRK-042", "Truck 42", "demo-truck")
    serial = int(time.time()) % 10**9
    pallets = [epc.sgtin_uri("0614141", "812345", serial * 10 + i) for i in range(3)]
    record = DemandRecord.model_validate({
        "origin_site_id": "wh-sh1", "destination": {"site_id": "acme-pd"}, "vehicle_id": "TRK-042",
        "service_level": "express", "items": [{"epc_uri": uri} for uri in pallets],
        "planned_route": {"type": "LineString", "coordinates": [(lon, lat) for lat, lon in ROUTE]}})
    upsert_demand(conn, "acme", ref, record)
    return pallets


def write_profile(folder: Path, gateway_id: str, mqtt_url: str, gateway: dict | None = None,
                  **devices: object) -> str:
    """A gateway profile in `folder` (outbox beside it); `gateway` adds settings of its own."""
    path = folder / f"{gateway_id}.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"id": gateway_id, "broker": mqtt_url,
                                                "outbox": str(folder / f"{gateway_id}.outbox.sqlite"),
                                                **(gateway or {})},
                                    **devices}))
    return str(path)


def portal_reader(name: str, port: str, read_point: str) -> dict:
    """A Mercury reader at a portal door: antenna 1 outside, 2 inside; on the Chinese band, as the demo's
    sites are in Shanghai."""
    return {"name": name, "protocol": "thingmagic-mercury", "port": port, "region": "PRC",
            "antennas": [{"port": 1, "read_point": read_point, "side": "outer", "power_dbm": 27},
                         {"port": 2, "read_point": read_point, "side": "inner", "power_dbm": 27}]}


def _scenario(fds: dict[str, int], tags: list[str], stop: threading.Event) -> None:
    """Load at door 3, drive to the customer in real time, unload at its door 1."""
    stop.wait(5)  # let the gateways open their ports
    for _ in range(2):  # the pallets pass the portal; forklifts stop in it, tags are read again
        os.write(fds["origin"], portal_passage(tags, outer=1, inner=2, outward=True))
        stop.wait(1)
    stop.wait(5)
    for epoch in drive(ROUTE, SPEED_KMH, start=datetime.now(UTC)):
        if stop.wait(1):
            return
        os.write(fds["gps"], epoch)
    stop.wait(5)
    os.write(fds["destination"], portal_passage(tags, outer=1, inner=2, outward=False))


def _watch(database_url: str, ref: str, stop: threading.Event) -> None:
    last = None
    with psycopg.connect(database_url, autocommit=True) as conn:
        while not stop.wait(1):
            (status,) = conn.execute("SELECT status FROM demands WHERE customer_id = 'acme' AND external_ref = %s",
                                     (ref,)).fetchone()
            if status != last:
                print(f"{datetime.now():%H:%M:%S}  shipment {ref}: {status}", flush=True)
                last = status
            if status == "delivered":
                return


@contextmanager
def start_demo(database_url: str, mqtt_url: str, supervisor: object, base_url: str) -> Iterator[None]:
    ref = f"SO-{datetime.now():%H%M%S}"
    with psycopg.connect(database_url) as conn:
        pallets = _seed(conn, ref)
        keys = {"acme (customer)": create_key(conn, "customer", "acme", "demo"),
                "dispatcher": create_key(conn, "dispatcher", label="demo"),
                "integration (CRM)": create_key(conn, "integration", label="demo")}
    folder = Path(supervisor.log_dir).parent / "demo"  # type: ignore[attr-defined]
    folder.mkdir(parents=True, exist_ok=True)
    ptys = {name: open_pty_pair() for name in ("origin", "destination", "gps")}
    dock = write_profile(folder, "demo-dock", mqtt_url, readers=[
        portal_reader("wh-sh1-door-03", ptys["origin"][1], "wh-sh1/door-03"),
        portal_reader("acme-pd-door-01", ptys["destination"][1], "acme-pd/door-01")])
    truck = write_profile(folder, "demo-truck", mqtt_url, gps={"port": ptys["gps"][1], "vehicle": "TRK-042"})
    supervisor.start("gateway-dock", "gateway", "--config", dock)  # type: ignore[attr-defined]
    supervisor.start("gateway-truck", "gateway", "--config", truck)  # type: ignore[attr-defined]
    print("\nDemo API keys (shown once):")
    for who, key in keys.items():
        print(f"  {who:18} {key}")
    print(f"\nFollow shipment {ref} (3 pallets, truck TRK-042, wh-sh1 → acme-pd):")
    print(f'  curl -s -H "Authorization: Bearer {keys["acme (customer)"]}" {base_url}/v1/shipments/{ref}\n')
    stop = threading.Event()
    tags = [epc.encode(uri, filter_=6) for uri in pallets]
    threads = [threading.Thread(target=_scenario, args=({k: v[0] for k, v in ptys.items()}, tags, stop), daemon=True),
               threading.Thread(target=_watch, args=(database_url, ref, stop), daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        for fd, _ in ptys.values():
            os.close(fd)
