"""Day one (issue 14): from an empty database, using only the command line and HTTP, set up the master data,
import the demand records, run a simulated day and watch the statuses move.

Nothing of the project is imported here: every step is a `cargotrace` process (`python -m launcher.cli`) or
an HTTP request to a running `cargotrace api`. Devices speak their wire bytes: the dock doors' readers are
`epc-lines` readers (one EPC in hex per line) on pseudo-terminals this test writes, the truck is a JT/T 808
terminal (`cargotrace simulate --jt808`) driving against the fleet gateway's endpoint.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Processes, wait_for

# The route of `cargotrace simulate --jt808` (the demo's): from the warehouse to the customer's DC, 1.5 km.
WAREHOUSE = (31.2304, 121.4737)
CUSTOMER_DC = (31.2404, 121.4837)
# ACME's DC as a polygon (GeoJSON: [lon, lat]): its yard reaches back along the route, so that the truck, at
# 60 km/h, enters it about 750 m after leaving the warehouse, and an arm to the north takes the circle around
# the polygon (centred on its mean corner, out to its farthest) well beyond the outline, to about 350 m from
# the warehouse; both stay clear of the warehouse's 200 m circle.
ACME_PD = [[121.4780, 31.2345], [121.4860, 31.2345], [121.4875, 31.2395], [121.4870, 31.2500],
           [121.4780, 31.2425], [121.4780, 31.2345]]
PHONE = "013912345678"  # TRK-042's JT/T 808 terminal
BAD_LINES = {41: "unknown site", 122: "bad EPC", 161: "no origin"}  # file line numbers (the header is line 1)


def sgtin96(company: str, item: str, serial: int, filter_: int = 1) -> str:
    """The 24 hex digits a tag carries for urn:epc:id:sgtin:COMPANY.ITEM.SERIAL (GS1 TDS, SGTIN-96)."""
    partition, company_bits = {12: (0, 40), 11: (1, 37), 10: (2, 34), 9: (3, 30), 8: (4, 27), 7: (5, 24),
                               6: (6, 20)}[len(company)]
    value = (0x30 << 88 | filter_ << 85 | partition << 82 | int(company) << (82 - company_bits)
             | int(item) << 38 | serial)
    return f"{value:024X}"


def pallets(n: int) -> list[str]:
    """The two pallets of demand number n."""
    return [f"urn:epc:id:sgtin:0614141.812345.{n * 10 + k}" for k in (1, 2)]


def tag(uri: str) -> str:
    company, item, serial = uri.rsplit(":", 1)[1].split(".")
    return sgtin96(company, item, int(serial))


def nmea_fix(ts: datetime, lat: float, lon: float, speed_kmh: float, course_deg: float = 90.0) -> bytes:
    """The RMC and GGA sentences of one fix, as a receiver prints them (NMEA 0183)."""
    def sentence(body: str) -> str:
        checksum = 0
        for char in body.encode():
            checksum ^= char
        return f"${body}*{checksum:02X}\r\n"

    def ddmm(value: float, degree_digits: int) -> str:
        degrees = int(abs(value))
        return f"{degrees:0{degree_digits}d}{(abs(value) - degrees) * 60:07.4f}"

    hhmmss = f"{ts:%H%M%S}.00"
    la, lo = ddmm(lat, 2), ddmm(lon, 3)
    return (sentence(f"GPRMC,{hhmmss},A,{la},N,{lo},E,{speed_kmh / 1.852:.2f},{course_deg:.1f},{ts:%d%m%y},,,A")
            + sentence(f"GPGGA,{hhmmss},{la},N,{lo},E,1,09,0.9,35.0,M,47.0,M,,")).encode()


def inside(polygon: list[list[float]], lat: float, lon: float) -> bool:
    """Ray casting: is the point inside the ring of [lon, lat] corners?"""
    result = False
    for (x1, y1), (x2, y2) in itertools.pairwise(polygon):
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            result = not result
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def demands_csv(path: Path) -> None:
    """200 demand records, SO-0001..SO-0200: odd numbers ACME's (on TRK-042), even ones Globex's (on TRK-043);
    the rows of BAD_LINES are broken."""
    lines = ["customer_id,external_ref,origin_site_id,destination_site_id,vehicle_id,items"]
    for n in range(1, 201):
        customer, vehicle = ("acme", "TRK-042") if n % 2 else ("globex", "TRK-043")
        origin, items = "wh-sh1", " ".join(pallets(n))
        line = n + 1
        if BAD_LINES.get(line) == "unknown site":
            origin = "wh-zz9"
        elif BAD_LINES.get(line) == "bad EPC":
            items = tag(pallets(n)[0]) + " " + pallets(n)[1]  # the tag's hex pasted instead of its URI
        elif BAD_LINES.get(line) == "no origin":
            origin = ""
        lines.append(f"{customer},SO-{n:04d},{origin},acme-pd,{vehicle},{items}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def cli(db_url: str, mqtt_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    unique = uuid.uuid4().hex[:8]
    env = {**os.environ, "CARGOTRACE_DATABASE_URL": db_url, "CARGOTRACE_MQTT_URL": mqtt_url,
           "CARGOTRACE_INGEST_CLIENT_ID": f"ingest-{unique}", "CARGOTRACE_INGEST_SHARED_GROUP": f"g{unique}",
           "CARGOTRACE_CRM_POLL_SECONDS": "0.5"}
    procs = Processes(env, tmp_path)
    try:
        yield {"env": env, "procs": procs, "unique": unique}
    finally:
        procs.stop()


def run(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "launcher.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)
    if ok:
        assert done.returncode == 0, f"cargotrace {' '.join(args)}: exit {done.returncode}\n{done.stderr}"
    return done


# a minute and more: each CLI step is a process of its own
@pytest.mark.slow
def test_day_one_from_an_empty_database_with_the_cli_and_http_only(cli: dict[str, Any], mqtt_url: str,
                                                                 tmp_path: Path) -> None:
    env, procs, unique = cli["env"], cli["procs"], cli["unique"]
    assert sgtin96("0614141", "812345", 6789, filter_=3) == "3074257BF7194E4000001A85"  # GS1 TDS's example
    gateways = {"dock-sh1": f"dock-sh1-{unique}", "dock-pd": f"dock-pd-{unique}", "truck": f"truck-043-{unique}",
                "fleet": f"fleet-{unique}"}

    # 1. Master data, with the CLI alone.
    run(env, "customers", "add", "acme", "--name", "ACME Trading", "--language", "en",
        "--contact", '{"email": "logistics@acme.example"}')
    run(env, "customers", "add", "globex", "--name", "Globex")
    run(env, "sites", "add", "wh-sh1", "--name", "Warehouse Shanghai 1", "--doors", "door-03,door-04",
        "--geofence", json.dumps({"lat": WAREHOUSE[0], "lon": WAREHOUSE[1], "radius_m": 200}))
    run(env, "sites", "add", "acme-pd", "--name", "ACME Pudong DC", "--doors", "door-01",
        "--geofence", json.dumps({"type": "Polygon", "coordinates": [ACME_PD]}))
    run(env, "vehicles", "add", "TRK-042", "--plate", "沪A12345", "--telematics-id", PHONE,
        "--gateway-id", gateways["fleet"])
    run(env, "vehicles", "add", "TRK-043", "--plate", "沪B54321", "--gateway-id", gateways["truck"])
    run(env, "gateways", "add", gateways["dock-sh1"], "--kind", "dock", "--site-id", "wh-sh1",
        "--read-points", "wh-sh1/door-03,wh-sh1/door-04")
    run(env, "gateways", "add", gateways["dock-pd"], "--kind", "dock", "--site-id", "acme-pd",
        "--read-points", "acme-pd/door-01")
    run(env, "gateways", "add", gateways["truck"], "--kind", "vehicle", "--vehicle-id", "TRK-043")
    run(env, "gateways", "add", gateways["fleet"], "--kind", "fleet")

    def listed(kind: str) -> dict[str, dict[str, Any]]:
        rows = [json.loads(line) for line in run(env, kind, "list").stdout.splitlines()]
        return {row["id"]: row for row in rows}

    assert set(listed("customers")) == {"acme", "globex"}
    sites = listed("sites")
    assert set(sites) == {"wh-sh1", "acme-pd"}
    assert sites["wh-sh1"]["doors"] == ["door-03", "door-04"] and sites["acme-pd"]["doors"] == ["door-01"]
    site = json.loads(run(env, "sites", "show", "acme-pd").stdout)
    assert site["geofence"] == {"type": "Polygon", "coordinates": [ACME_PD]}
    vehicle = json.loads(run(env, "vehicles", "show", "TRK-042").stdout)
    assert vehicle["telematics_id"] == PHONE and vehicle["gateway_id"] == gateways["fleet"]
    assert set(listed("vehicles")) == {"TRK-042", "TRK-043"}
    assert {k: v["kind"] for k, v in listed("gateways").items()} == {
        gateways["dock-sh1"]: "dock", gateways["dock-pd"]: "dock", gateways["truck"]: "vehicle",
        gateways["fleet"]: "fleet"}

    # 2. Keys, then the central services as processes.
    keys = {"crm": run(env, "keys", "create", "--role", "integration", "--label", "day one CRM").stdout.strip(),
            "dispatcher": run(env, "keys", "create", "--role", "dispatcher").stdout.strip(),
            "acme": run(env, "keys", "create", "--role", "customer", "--customer", "acme").stdout.strip(),
            "globex": run(env, "keys", "create", "--role", "customer", "--customer", "globex").stdout.strip()}
    assert all(key.startswith("ct_") for key in keys.values()), keys
    port = free_port()
    procs.start("api", "api", "--host", "127.0.0.1", "--port", str(port))
    procs.start("ingest", "ingest")
    procs.start("crm", "crm", "run")

    # 3. 200 demand records from CSV, three of them bad.
    demands = tmp_path / "demands.csv"
    demands_csv(demands)
    imported = run(env, "crm", "import", str(demands), ok=False)
    assert imported.returncode == 1, imported.stderr
    refused = [line for line in imported.stderr.splitlines() if line.startswith("line ")]
    assert refused == [
        "line 41: reference: unknown site: wh-zz9",
        "line 122: items.0.epc_uri: String should match pattern "
        "'^urn:epc:id:(sgtin|sscc|grai|giai|sgln|gid):[0-9A-Za-z.%-]+$'",
        "line 161: origin_site_id: Field required",
    ], imported.stderr
    assert imported.stderr.rstrip().endswith("created 197, updated or unchanged 0, refused 3"), imported.stderr
    again = run(env, "crm", "import", str(demands), ok=False)  # importing the same file again changes nothing
    assert again.returncode == 1 and again.stderr.rstrip().endswith("created 0, updated or unchanged 197, refused 3")

    wait_for(lambda: procs.check_alive() or listening(port), timeout=60, what="the API to listen")
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def auth(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[who]}"}

    def shipments(who: str, customer: str | None = None) -> dict[str, str]:
        """external_ref → status of every shipment the key sees (staff: of `customer`), page by page."""
        found, after = {}, 0
        while True:
            params = {"after": after, "limit": 100, **({"customer_id": customer} if customer else {})}
            page = api.get("/v1/shipments", params=params, headers=auth(who))
            assert page.status_code == 200, page.text
            found.update({s["external_ref"]: s["status"] for s in page.json()["shipments"]})
            if (after := page.json()["next_after"]) is None:
                return found

    def status(ref: str) -> str:
        procs.check_alive()
        answer = api.get(f"/v1/shipments/{ref}", headers=auth("acme"))
        assert answer.status_code == 200, answer.text
        return answer.json()["status"]

    assert api.get("/healthz").json()["status"] == "ok"
    acme, globex = shipments("acme"), shipments("globex")
    assert len(acme) == 99 and len(globex) == 98
    assert set(acme.values()) == set(globex.values()) == {"pending"}
    assert "SO-0121" not in acme and "SO-0040" not in globex and "SO-0160" not in globex  # the refused rows
    assert shipments("dispatcher", "acme") == acme and shipments("dispatcher", "globex") == globex
    # The master data through HTTP too.
    assert api.get("/v1/sites/acme-pd", headers=auth("crm")).json()["geofence"]["type"] == "Polygon"
    assert api.get(f"/v1/gateways/{gateways['fleet']}", headers=auth("dispatcher")).json()["kind"] == "fleet"
    assert api.get("/v1/sites/wh-sh1", headers=auth("acme")).status_code == 403

    # 4. The day: gateways at both sites' doors and the fleet's JT/T 808 endpoint.
    ptys = {"wh-sh1": os.openpty(), "acme-pd": os.openpty(), "TRK-043": os.openpty()}
    jt808_port = free_port()

    def profile(gateway_id: str, **devices: Any) -> str:
        path = tmp_path / f"{gateway_id}.yaml"
        path.write_text(json.dumps({"gateway": {"id": gateway_id, "broker": mqtt_url,
                                                "outbox": str(tmp_path / f"{gateway_id}.sqlite"),
                                                "smoothing": {"absent_s": 0.5}}, **devices}))  # JSON is YAML
        return str(path)

    def reader(site: str, door: str) -> dict[str, Any]:
        return {"name": f"{site}-{door}", "protocol": "epc-lines", "port": os.ttyname(ptys[site][1]),
                "region": "PRC", "antennas": [{"port": 1, "read_point": f"{site}/{door}"}]}

    try:
        for name, site, door in (("dock-sh1", "wh-sh1", "door-03"), ("dock-pd", "acme-pd", "door-01")):
            config = profile(gateways[name], readers=[reader(site, door)])
            assert run(env, "config", "validate", config).stdout.strip() == f"{config}: ok"
            procs.start(name, "gateway", "--config", config)
        fleet = profile(gateways["fleet"], jt808={"listen": f"127.0.0.1:{jt808_port}", "secret": "day-one",
                                                  "terminals": {PHONE: "TRK-042"}})
        procs.start("fleet", "gateway", "--config", fleet)
        truck = profile(gateways["truck"], gps={"port": os.ttyname(ptys["TRK-043"][1]), "vehicle": "TRK-043"})
        procs.start("truck", "gateway", "--config", truck)

        def position(vehicle: str) -> dict[str, Any] | None:
            answer = api.get(f"/v1/vehicles/{vehicle}/position", headers=auth("dispatcher"))
            return answer.json() if answer.status_code == 200 else None

        # TRK-043, with none of Globex's pallets on board, parks at the warehouse and drives off, 400 m east:
        # Globex's shipments on it stay pending.
        wait_for(lambda: procs.check_alive() or (os.write(ptys["TRK-043"][0], nmea_fix(
            datetime.now(UTC), *WAREHOUSE, 0.0)) and position("TRK-043")), timeout=60, interval=1.0,
            what="TRK-043's first fix")
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        for second in range(1, 21):
            os.write(ptys["TRK-043"][0], nmea_fix(start + timedelta(seconds=second), WAREHOUSE[0],
                                                  WAREHOUSE[1] + 0.0002 * second, 70.0))
        wait_for(lambda: (position("TRK-043") or {}).get("lon", 0) > WAREHOUSE[1] + 0.003, timeout=30,
                 what="TRK-043 outside the warehouse")

        def read(site: str, uris: list[str]) -> None:
            """The pallets pass the door: each tag read a few times (a passage needs two reads)."""
            os.write(ptys[site][0], "".join(f"{tag(uri)}\r\n" * 3 for uri in uris).encode())

        # Pallets read out of the warehouse door (again, until the gateway has opened its port).
        first, third = pallets(1), pallets(3)
        wait_for(lambda: read("wh-sh1", first[:1]) or status("SO-0001") == "loading", timeout=60, interval=1.0,
                 what="SO-0001 loading")
        wait_for(lambda: read("wh-sh1", first[1:] + third) or status("SO-0001") == status("SO-0003") == "loaded",
                 timeout=60, interval=1.0, what="SO-0001 and SO-0003 loaded")

        # TRK-042 drives to ACME's DC, its JT/T 808 terminal reporting to the fleet gateway.
        wait_for(lambda: procs.check_alive() or listening(jt808_port), timeout=60, what="the JT/T 808 endpoint")
        procs.start("terminal", "simulate", "--jt808", f"127.0.0.1:{jt808_port}", "--phone", PHONE, "--period", "1")
        wait_for(lambda: status("SO-0001") == status("SO-0003") == "in_transit", timeout=60, interval=0.5,
                 what="in transit")
        seen = api.get("/v1/shipments/SO-0001", headers=auth("acme")).json()
        assert seen["status_word"] == "InTransit" and seen["last_position"] is not None
        wait_for(lambda: status("SO-0001") == status("SO-0003") == "arrived", timeout=90, interval=0.5,
                 what="arrived in the polygon")
        procs.kill("terminal")

        # SO-0001's pallets are received at ACME's door; SO-0003's are still on the truck.
        wait_for(lambda: read("acme-pd", first) or status("SO-0001") == "delivered", timeout=60, interval=1.0,
                 what="SO-0001 delivered")
    finally:
        for master, slave in ptys.values():
            os.close(master)
            os.close(slave)

    shipment = api.get("/v1/shipments/SO-0001", headers=auth("acme")).json()
    assert [e["status"] for e in shipment["timeline"]] == ["loading", "loaded", "in_transit", "arrived", "delivered"]
    assert shipment["items"] == {"total": 2, "loaded": 2, "delivered": 2}
    assert status("SO-0003") == "arrived"
    acme = shipments("acme")
    assert acme.pop("SO-0001") == "delivered" and acme.pop("SO-0003") == "arrived"
    assert set(acme.values()) == {"pending"}  # the 97 others did not move
    assert set(shipments("globex").values()) == {"pending"}

    # Globex sees nothing of ACME's: not the shipment, not its customer record, not in its list.
    other = api.get("/v1/shipments/SO-0001", headers=auth("globex"))
    assert other.status_code == 404 and "acme" not in other.text.lower()
    assert api.get("/v1/customers/acme", headers=auth("globex")).status_code == 404
    assert not set(shipments("globex")) & {"SO-0001", "SO-0003"}
    procs.check_alive()

    # Arrival is a fix inside ACME's polygon, not inside some circle around it.
    arrived = next(e for e in shipment["timeline"] if e["status"] == "arrived")
    api.close()
    assert inside(ACME_PD, arrived["lat"], arrived["lon"]), (
        f"SO-0001 arrived at {arrived['lat']}, {arrived['lon']}, outside acme-pd's polygon {ACME_PD}: "
        f"the correlator decides arrival by the circle around the polygon (sites.geofence_polygon is not read)")
