"""`cargotrace simulate`: a real gateway fed by simulated devices, for a stack without hardware (the
compose file's simulated gateway, smoke checks of a deployment). A dock door reader and a GPS receiver
speak their real wire protocols on pseudo-terminals: pallets pass the door, out and in by turns, every
period; the truck drives the demo route back and forth, one fix a second. Runs until stopped."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from common import epc
from common.failures import Failure, cause, unreachable
from device_drivers import jt808
from device_drivers.simulators import (
    Jt808Terminal,
    RoutePoint,
    TeltonikaTracker,
    fix_sentences,
    jt808_location,
    open_pty_pair,
    portal_passage,
    route,
    teltonika_record,
)
from gateway.runner import run as run_gateway
from launcher.demo import ROUTE, SPEED_KMH, portal_reader, write_profile


def _dock(fd: int, tags_per_passage: int, period_s: float, stop: threading.Event) -> None:
    serials = itertools.count(int(time.time()) % 10**8 * 1000)  # fresh tags after a restart (< 2^38)
    outward = True
    while not stop.wait(period_s):
        tags = [epc.encode(epc.sgtin_uri("0614141", "812345", next(serials)), filter_=6)
                for _ in range(tags_per_passage)]
        os.write(fd, portal_passage(tags, outer=1, inner=2, outward=outward))
        outward = not outward


def _demo_drive(period_s: float, stop: threading.Event) -> Iterator[RoutePoint]:
    """The demo route back and forth, a point every `period_s` of real time stamped now, until stopped."""
    for way in itertools.cycle((ROUTE, ROUTE[::-1])):
        for point in route(way, SPEED_KMH, datetime.now(UTC), period_s):
            if stop.wait(period_s):
                return
            yield replace(point, ts=datetime.now(UTC).replace(microsecond=0))


def _truck(fd: int, stop: threading.Event) -> None:
    for p in _demo_drive(1.0, stop):
        os.write(fd, fix_sentences(p.ts, p.lat, p.lon, p.speed_kmh, p.course_deg))


def simulate(gateway_id: str, broker: str, folder: Path, site: str, vehicle: str, tags_per_passage: int,
             period_s: float, password_file: str | None = None, metrics_listen: str | None = None,
             stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    folder.mkdir(parents=True, exist_ok=True)
    door, gps = open_pty_pair(), open_pty_pair()
    own = {k: v for k, v in (("password_file", password_file), ("metrics_listen", metrics_listen)) if v}
    profile = write_profile(folder, gateway_id, broker, own, readers=[portal_reader("door-01", door[1],
                                                                                   f"{site}/door-01")],
                            gps={"port": gps[1], "vehicle": vehicle})
    feeders = [threading.Thread(target=_dock, args=(door[0], tags_per_passage, period_s, stop), daemon=True),
               threading.Thread(target=_truck, args=(gps[0], stop), daemon=True)]
    for feeder in feeders:
        feeder.start()
    try:
        run_gateway(profile, stop)  # stops on SIGTERM / SIGINT, flushing its outbox
    finally:
        stop.set()
        for feeder in feeders:
            feeder.join(5)
        for fd, _ in (door, gps):
            os.close(fd)


@contextmanager
def _endpoint(section: str, address: str) -> Iterator[None]:
    """Connecting to a gateway's endpoint: a refusal is one line, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise Failure(unreachable(f"a gateway's {section} endpoint", address, cause(exc),
                                  f"check the address and that the gateway runs with a {section} section")) from exc


def simulate_jt808(address: str, phone: str, period_s: float, stop: threading.Event | None = None,
                   is_2019: bool = False) -> int:
    """A JT/T 808 terminal against a platform at HOST:PORT (a gateway's jt808 endpoint): registers,
    authenticates and drives the demo route back and forth, one report every `period_s` of real time.
    Returns how many reports the platform accepted."""
    stop = stop or threading.Event()
    host, port = address.rsplit(":", 1)
    with _endpoint("jt808", address):
        terminal = Jt808Terminal(host, int(port), phone, is_2019)
    accepted = 0
    try:
        result, code = terminal.register()
        if result != jt808.REGISTERED:
            raise SystemExit(f"error: the platform refused terminal {phone} (register result {result}): "
                             f"map it to a vehicle in the gateway profile's jt808.terminals")
        if terminal.authenticate(code) != jt808.OK:
            raise SystemExit(f"error: the platform refused terminal {phone}'s authentication")
        for point in _demo_drive(period_s, stop):
            accepted += terminal.report(jt808_location(point)) == jt808.OK
    finally:
        terminal.close()
    return accepted


def simulate_teltonika(address: str, imei: str, period_s: float, stop: threading.Event | None = None) -> int:
    """A Teltonika tracker against a gateway's teltonika endpoint at HOST:PORT: drives the demo route back
    and forth, one record every `period_s` of real time. Returns how many records the gateway took."""
    stop = stop or threading.Event()
    host, port = address.rsplit(":", 1)
    with _endpoint("teltonika", address):
        tracker = TeltonikaTracker(host, int(port), imei)
    taken = 0
    try:
        if not tracker.accepted:
            raise SystemExit(f"error: the gateway refused tracker {imei}: map its IMEI to a vehicle in the gateway "
                             f"profile's teltonika.devices")
        for point in _demo_drive(period_s, stop):
            taken += tracker.send([teltonika_record(point)])
    finally:
        tracker.close()
    return taken
