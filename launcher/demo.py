"""`cargotrace up --demo`: sample customers and demand records, simulated dock-door readers and a truck
speaking the real wire protocols on pseudo-terminals, read by real gateways. A shipment goes from
`pending` to `delivered` in about two minutes; the demo prints its web pages and keys, every status
change, the truck's progress while it drives, and when it is done. `pace` > 1 runs it faster (tests)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import yaml

from common import epc
from crm_link.demands import DemandRecord, upsert_demand
from crm_link.directory import upsert_customer, upsert_site, upsert_vehicle
from crm_link.geo import great_circle_m
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


def _scenario(fds: dict[str, int], tags: list[str], stop: threading.Event, pace: float) -> None:
    """Load at door 3 (the first pallet alone, so that `loading` shows), drive to the customer in real
    time, unload at its door 1."""
    wait = lambda seconds: stop.wait(seconds / pace)  # noqa: E731
    wait(5)  # let the gateways open their ports
    for batch in (tags[:1], tags[1:]):
        for _ in range(2):  # forklifts stop in the portal: tags are read again
            os.write(fds["origin"], portal_passage(batch, outer=1, inner=2, outward=True))
            wait(1)
        wait(6)
    for epoch in drive(ROUTE, SPEED_KMH, start=datetime.now(UTC)):
        if wait(1):
            return
        os.write(fds["gps"], epoch)
    wait(5)
    os.write(fds["destination"], portal_passage(tags, outer=1, inner=2, outward=False))


def _watch(database_url: str, ref: str, stop: threading.Event, pace: float, data_dir: Path) -> None:
    """Status changes as they happen, the truck's progress every 15 s while it drives, the end."""
    last, started, progress_at = None, time.monotonic(), 0.0
    with psycopg.connect(database_url, autocommit=True) as conn:
        while not stop.wait(1 / pace):
            status, eta = conn.execute("SELECT status, eta FROM demands WHERE customer_id = 'acme' AND "
                                       "external_ref = %s", (ref,)).fetchone()
            if status != last:
                print(f"{datetime.now():%H:%M:%S}  shipment {ref}: {status}", flush=True)
                last = status
            if status == "in_transit" and time.monotonic() >= progress_at:
                progress_at = time.monotonic() + 15 / pace
                print(f"{datetime.now():%H:%M:%S}  {_progress(conn, eta)}", flush=True)
            if status == "delivered":
                took = round(time.monotonic() - started)
                print(f"demo finished: {ref} delivered in {took // 60} min {took % 60} s. Ctrl-C stops everything; "
                      f"the demo's data stays in {data_dir}/ (to start over: cargotrace up --demo --fresh)", flush=True)
                return


def _progress(conn: psycopg.Connection, eta: datetime | None) -> str:
    row = conn.execute("SELECT lat, lon FROM positions WHERE vehicle_id = 'TRK-042' "
                       "ORDER BY ts DESC LIMIT 1").fetchone()
    if row is None:
        return "truck TRK-042: no position yet"
    left_km = great_circle_m(row[0], row[1], *CUSTOMER_SITE) / 1000
    arrival = f", ETA {eta.astimezone():%H:%M:%S}" if eta else ""
    return f"truck TRK-042 at {row[0]:.5f},{row[1]:.5f}: {left_km:.1f} km from ACME Pudong DC{arrival}"


def _share_link(base_url: str, ref: str, key: str) -> str:
    """A share link made through the API, as a customer makes one."""
    answer = httpx.post(f"{base_url}/v1/shipments/{ref}/share", headers={"Authorization": f"Bearer {key}"},
                        timeout=10)
    answer.raise_for_status()
    return str(answer.json()["url"])


@contextmanager
def start_demo(database_url: str, mqtt_url: str, supervisor: object, base_url: str,
               pace: float = 1.0) -> Iterator[None]:
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
    customer = keys["acme (customer)"]
    print("\nDemo API keys (shown once):")
    for who, key in keys.items():
        print(f"  {who:18} {key}")
    print("\nWeb pages:")
    print(f"  dispatcher console  {base_url}/console  (sign in with the dispatcher key)")
    print(f"  customer page       {base_url}/track/{ref}  (sign in with the acme key)")
    print(f"  share link          {_share_link(base_url, ref, customer)}  (no key needed)")
    print(f'  API                 curl -s -H "Authorization: Bearer {customer}" {base_url}/v1/shipments/{ref}')
    print(f"\nWhat to watch: shipment {ref}, 3 pallets for ACME: loaded through door 3 of Warehouse Shanghai 1, "
          f"driven 1.5 km by truck TRK-042, unloaded at ACME Pudong DC's door 1; about 2 minutes.\n", flush=True)
    stop = threading.Event()
    tags = [epc.encode(uri, filter_=6) for uri in pallets]
    threads = [threading.Thread(target=_scenario, args=({k: v[0] for k, v in ptys.items()}, tags, stop, pace),
                                daemon=True),
               threading.Thread(target=_watch, args=(database_url, ref, stop, pace, folder.parent), daemon=True)]
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
