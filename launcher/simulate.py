"""`cargotrace simulate`: a real gateway fed by simulated devices, for a stack without hardware (the
compose file's simulated gateway, smoke checks of a deployment). A dock door reader and a GPS receiver
speak their real wire protocols on pseudo-terminals: pallets pass the door, out and in by turns, every
period; the truck drives the demo route back and forth, one fix a second. Runs until stopped."""

from __future__ import annotations

import itertools
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from common import epc
from device_drivers.simulators import drive, open_pty_pair, portal_passage
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
