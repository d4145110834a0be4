"""`cargotrace simulate`: a real gateway fed by simulated devices, for a stack without hardware (the
compose file's simulated gateway, smoke checks of a deployment). A dock door reader and a GPS receiver
speak their real wire protocols on pseudo-terminals: pallets pass the door, out and in by turns, every
period; the truck drives the demo route back and forth, one fix a second. Runs until stopped."""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from common import epc
from device_drivers import jt808
from device_drivers.simulators import Jt808Terminal, drive, open_pty_pair, portal_passage, route_reports
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


def _truck(fd: int, stop: threading.Event) -> None:
    for route in itertools.cycle((ROUTE, ROUTE[::-1])):
        for epoch in drive(route, SPEED_KMH, start=datetime.now(UTC)):
            if stop.wait(1):
                return
            os.write(fd, epoch)


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


def simulate_jt808(address: str, phone: str, period_s: float, stop: threading.Event | None = None,
                   is_2019: bool = False) -> int:
    """A JT/T 808 terminal against a platform at HOST:PORT (a gateway's jt808 endpoint): registers,
    authenticates and drives the demo route back and forth, one report every `period_s` of real time.
    Returns how many reports the platform accepted."""
    stop = stop or threading.Event()
    host, port = address.rsplit(":", 1)
    terminal = Jt808Terminal(host, int(port), phone, is_2019)
    accepted = 0
    try:
        result, code = terminal.register()
        if result != jt808.REGISTERED:
            raise SystemExit(f"error: the platform refused terminal {phone} (register result {result}): "
                             f"map it to a vehicle in the gateway profile's jt808.terminals")
        if terminal.authenticate(code) != jt808.OK:
            raise SystemExit(f"error: the platform refused terminal {phone}'s authentication")
        for route in itertools.cycle((ROUTE, ROUTE[::-1])):
            for report in route_reports(route, SPEED_KMH, datetime.now(UTC), period_s):
                if stop.wait(period_s):
                    return accepted
                accepted += terminal.report(replace(report, ts=datetime.now(UTC).replace(microsecond=0))) == jt808.OK
    finally:
        terminal.close()
    return accepted
