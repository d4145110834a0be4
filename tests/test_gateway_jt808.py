"""A truck-fleet gateway as a JT/T 808 platform endpoint: simulated terminals connect over TCP,
register, authenticate and report; their fixes come out on the real broker under the mapped vehicles,
alarms with them, and every message gets the answer the standard gives."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device_drivers import jt808 as j
from device_drivers.simulators import Jt808Terminal, route_reports
from firmware_configs.profile import GatewayProfile
from gateway.jt808_server import Jt808Server
from gateway.runner import Gateway
from launcher.embedded import free_port, wait_for_port
from tests.helpers import Subscriber, wait_for
from tests.journey import VEHICLE, journey
from tests.test_crm_status import CUSTOMER_SITE, WAREHOUSE

TERMINALS = {"013912345678": "TRK-808", "00000000018612345678": "TRK-2019"}
ROUTE = [(31.2304, 121.4737), (31.2330, 121.4790)]


@pytest.fixture
def fleet(tmp_path: Path, gateway_id: str, mqtt_url: str) -> Iterator[tuple[Gateway, Subscriber]]:
    profile = GatewayProfile.model_validate({
        "gateway": {"id": gateway_id, "broker": mqtt_url, "outbox": str(tmp_path / "outbox.sqlite")},
        "jt808": {"listen": "127.0.0.1:0", "terminals": TERMINALS, "secret": "s3cret"}})
    gateway = Gateway(profile)
    subscriber = Subscriber(mqtt_url, f"cargotrace/v1/{gateway_id}/gps")
    stop = threading.Event()
    thread = threading.Thread(target=gateway.run, args=(stop,))
    thread.start()
    wait_for(lambda: gateway.endpoints and gateway.endpoints[0].listening.is_set(), what="the JT/T 808 endpoint")
    yield gateway, subscriber
    stop.set()
    thread.join(20)
    subscriber.close()


def jt808_of(gateway: Gateway) -> Jt808Server:
    return next(e for e in gateway.endpoints if isinstance(e, Jt808Server))


def _connect(gateway: Gateway, phone: str, is_2019: bool = False) -> Jt808Terminal:
    return Jt808Terminal("127.0.0.1", jt808_of(gateway).port, phone, is_2019)


def test_terminals_register_authenticate_and_their_drive_arrives_under_their_vehicles(
        fleet: tuple[Gateway, Subscriber]) -> None:
    gateway, subscriber = fleet
    start = datetime.now(UTC).replace(microsecond=0)
    for phone, is_2019 in (("013912345678", False), ("18612345678", True)):
        terminal = _connect(gateway, phone, is_2019)
        result, code = terminal.register()
        assert result == j.REGISTERED and code
        assert terminal.authenticate(code) == j.OK
        reports = list(route_reports(ROUTE, 40.0, start, period_s=10.0, alarms_at={2: ("emergency",)}))
        assert all(terminal.report(r) == j.OK for r in reports)
        assert terminal.send(j.HEARTBEAT, b"").header.message_id == j.PLATFORM_RESPONSE
        terminal.close()
    events = subscriber.wait_events("gps", 2 * len(reports))
    by_vehicle = {v: [e for e in events if e["vehicle"] == v] for v in ("TRK-808", "TRK-2019")}
    assert all(len(evs) == len(reports) for evs in by_vehicle.values())  # 10 s apart: none thinned
    first = by_vehicle["TRK-808"][0]
    assert (first["lat"], first["lon"], first["ts"]) == (31.2304, 121.4737, start.isoformat().replace("+00:00",
                                                                                                       ".000Z"))
    assert [e.get("alarms") for e in by_vehicle["TRK-808"][:4]] == [None, None, ["emergency"], None]


def test_what_the_endpoint_refuses_and_how_it_says_so(fleet: tuple[Gateway, Subscriber]) -> None:
    gateway, _ = fleet
    at = j.Location((), 0, True, 31.23, 121.47, 5, 20.0, 90, datetime.now(UTC).replace(microsecond=0))
    stranger = _connect(gateway, "013900000000")
    assert stranger.register()[0] == j.NO_SUCH_TERMINAL
    assert stranger.report(at) == j.FAILURE
    stranger.close()
    forger = _connect(gateway, "013912345678")
    assert forger.authenticate("not-the-code") == j.FAILURE
    assert forger.report(at) == j.FAILURE  # never authenticated on this connection
    assert forger.send(0x0900, b"\x01").body[4] == j.NOT_SUPPORTED  # a message it does not handle
    forger.close()
    wait_for(lambda: jt808_of(gateway).counters["refused: not authenticated"] == 1)
    assert jt808_of(gateway).counters["refused: unknown terminal"] == 2
    assert jt808_of(gateway).counters["refused: authentication"] == 1
    assert jt808_of(gateway).counters["reports"] == 0


def test_a_blind_area_batch_after_a_tunnel_is_taken_whole_behind_the_live_track(
        fleet: tuple[Gateway, Subscriber]) -> None:
    """Out of the tunnel the terminal reports live first, then uploads what it recorded inside: those
    fixes are older than the live track's and are stored as history all the same."""
    gateway, subscriber = fleet
    terminal = _connect(gateway, "013912345678")
    terminal.authenticate(terminal.register()[1])
    now = datetime.now(UTC).replace(microsecond=0)
    live = list(route_reports(ROUTE, 40.0, now - timedelta(minutes=1), period_s=30.0))[:2]
    tunnel = list(route_reports(ROUTE, 40.0, now - timedelta(minutes=10), period_s=30.0))
    for report in live:
        assert terminal.report(report) == j.OK
    answer = terminal.send(j.BATCH_LOCATION, j.batch_body(tunnel, supplement=True))
    assert j.response_result(answer.body)[1:] == (j.BATCH_LOCATION, j.OK)
    terminal.close()
    events = subscriber.wait_events("gps", len(live) + len(tunnel))
    assert [e["ts"] for e in events] == [r.ts.isoformat().replace("+00:00", ".000Z") for r in live + tunnel]
    assert gateway.backfilled == len(tunnel)


def test_a_jt808_truck_takes_a_shipment_from_loaded_to_arrived_through_every_process(
        tmp_path: Path, db_url: str, mqtt_url: str, gateway_id: str) -> None:
    """Real processes: a fleet gateway with a JT/T 808 endpoint, ingest, the CRM link. A terminal mapped
    to the shipment's truck registers, authenticates and drives from the warehouse to the customer."""
    port = free_port()
    endpoint = {"jt808": {"listen": f"127.0.0.1:{port}", "terminals": {"013912345678": VEHICLE}}}
    with journey(tmp_path, db_url, mqtt_url, gateway_id, "SO-808", endpoint) as trip:
        wait_for_port(port)
        terminal = Jt808Terminal("127.0.0.1", port, "013912345678")
        terminal.authenticate(terminal.register()[1])
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=12)  # ~11 min: all in the past
        for report in route_reports([WAREHOUSE, CUSTOMER_SITE], 60.0, start, period_s=10.0):
            assert terminal.report(report) == j.OK
        terminal.close()
        trip.wait_for("arrived")
        assert trip.history() == (["loading", "loaded", "in_transit", "arrived"], [VEHICLE])


@pytest.mark.slow  # the terminal's protocol is in make test; this is the CLI around it
def test_the_command_line_simulates_a_terminal_driving_the_demo_route(fleet: tuple[Gateway, Subscriber]) -> None:
    gateway, subscriber = fleet
    terminal = subprocess.Popen([sys.executable, "-m", "launcher.cli", "simulate", "--jt808",
                                 f"127.0.0.1:{jt808_of(gateway).port}", "--phone", "013912345678", "--period", "0.2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        events = subscriber.wait_events("gps", 3)
    finally:
        terminal.terminate()
        terminal.wait(10)
    assert {e["vehicle"] for e in events} == {"TRK-808"}
