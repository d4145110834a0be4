"""A fleet of trucks for the benchmarks: each truck its own gateway (MQTT user = gateway id, as the shipped
broker config requires), publishing GPS batches per the MQTT contract at a total rate of fixes per second.

Run in a process of its own (`start`), so that its work neither slows nor is counted with the process that
measures. Each truck sends one batch a second holding its fixes of that second, evenly spaced in time;
the trucks' seconds are staggered so the broker sees a steady stream. Birth state on connect and a last
will, as a gateway does. Idle trucks stand in the origin's yard; trucks in transit drive the planned route
at 50 km/h, spread along it.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Literal

import paho.mqtt.client as mqtt
from shapely.geometry import LineString

from common.contract import GPS_SCHEMA, STATE_SCHEMA, batch, iso_ms, topic
from crm_link.geo import LocalProjection

PERIOD_S = 1.0  # a truck's batch interval
SPEED_KMH = 50.0
FIRST_M, SPREAD_M = 2_000.0, 20_000.0  # in transit: the trucks' starting points along the route
YARD_M = 150.0  # idle: the farthest a truck stands from the origin's centre


@dataclass(frozen=True, slots=True)
class Load:
    mode: Literal["idle", "transit"]
    rate: float  # fixes per second, all trucks together
    seconds: float
    vehicles: tuple[str, ...]  # the vehicle of each truck, in the order of the gateways
    route: tuple[tuple[float, float], ...]  # (lat, lon), the first point the origin's centre


@dataclass(frozen=True, slots=True)
class Published:
    fixes: int  # acknowledged by the broker (PUBACK)
    messages: int
    seconds: float  # from the start until the last acknowledgement
    behind_s: float  # the latest a batch left against its schedule: the publisher's own shortfall


class Route:
    """Points along a route by distance from its start, in a local metric projection."""

    def __init__(self, points: tuple[tuple[float, float], ...]) -> None:
        self.projection = LocalProjection(*points[0])
        self.line = LineString([self.projection.xy(lat, lon) for lat, lon in points])

    def at(self, metres: float) -> tuple[float, float, float]:
        """(lat, lon, course in degrees) at `metres` along the route."""
        here, ahead = self.line.interpolate(metres), self.line.interpolate(metres + 1.0)
        lat, lon = self.projection.latlon(here.x, here.y)
        return lat, lon, math.degrees(math.atan2(ahead.x - here.x, ahead.y - here.y)) % 360

    def yard(self, truck: int, trucks: int) -> tuple[float, float]:
        """A truck's parking place in the origin's yard."""
        angle, distance = 2 * math.pi * truck / trucks, YARD_M * (0.2 + 0.8 * (truck % 7) / 6)
        return self.projection.latlon(distance * math.sin(angle), distance * math.cos(angle))


def state(gateway: str, value: str) -> bytes:
    return json.dumps({"schema": STATE_SCHEMA, "gateway": gateway, "state": value, "ts": iso_ms(datetime.now(UTC)),
                       "software": "bench.fleet"}, separators=(",", ":")).encode()


def connect(port: int, gateway: str, password: str) -> tuple[mqtt.Client, mqtt.MQTTMessageInfo]:
    """A gateway's connection (MQTT 3.1.1, as gateways speak it) and the PUBACK of its birth state."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=gateway)
    client.username_pw_set(gateway, password)
    client.will_set(topic(gateway, "state"), state(gateway, "offline"), qos=1, retain=True)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, client.publish(topic(gateway, "state"), state(gateway, "online"), qos=1, retain=True)


def fix(seq: int, vehicle: str, at: float, lat: float, lon: float, speed: float, course: float | None) -> dict:
    """One GPS event of the contract (ARCHITECTURE.md §4)."""
    return {"seq": seq, "vehicle": vehicle, "ts": iso_ms(datetime.fromtimestamp(at, UTC)), "lat": round(lat, 7),
            "lon": round(lon, 7), "speed_kmh": speed, "course_deg": None if course is None else round(course, 1),
            "hdop": 0.9, "sats": 10, "quality": 1, "alt_m": 8.0}


class Truck:
    def __init__(self, gateway: str, vehicle: str, index: int, trucks: int, route: Route, moving: bool) -> None:
        self.gateway, self.vehicle, self.route, self.moving = gateway, vehicle, route, moving
        self.start_m = FIRST_M + SPREAD_M * index / trucks
        self.parked = route.yard(index, trucks)
        self.seq = time.time_ns() // 1000  # grows across runs, as a gateway's seq survives restarts
        self.owed = 0.5  # fixes round to the nearest: none lost to truncation on average
        self.last = time.time()

    def batch(self, share: float, started: float) -> tuple[bytes, int] | None:
        """The batch of fixes since the last one (`share`: this truck's fixes per second), or None."""
        now = time.time()
        self.owed += share * (now - self.last)
        n = int(self.owed)
        if n == 0:
            return None
        events = []
        for k in range(1, n + 1):
            at = self.last + (now - self.last) * k / n
            if self.moving:
                lat, lon, course = self.route.at(self.start_m + SPEED_KMH / 3.6 * (at - started))
                events.append(fix(self.seq + k, self.vehicle, at, lat, lon, SPEED_KMH, course))
            else:  # standing: a few metres of GPS noise
                lat, lon = self.parked
                events.append(fix(self.seq + k, self.vehicle, at, lat + random.gauss(0, 2e-5),
                                  lon + random.gauss(0, 2e-5), 0.0, None))
        self.seq, self.owed, self.last = self.seq + n, self.owed - n, now
        return batch(GPS_SCHEMA, self.gateway, events), n


def drive(port: int, gateways: list[tuple[str, str]], load: Load, control: Connection) -> None:
    """The fleet process: connect every truck, say "ready", wait for "go", publish `load`, report `Published`."""
    clients = [connect(port, gateway, password) for gateway, password in gateways]
    for _, birth in clients:
        birth.wait_for_publish(30)
    route = Route(load.route)
    trucks = [Truck(gateway, vehicle, i, len(gateways), route, load.mode == "transit")
              for i, ((gateway, _), vehicle) in enumerate(zip(gateways, load.vehicles, strict=True))]
    control.send("ready")
    control.recv()
    started, wall = time.perf_counter(), time.time()
    for i, truck in enumerate(trucks):  # already under way: the first batch holds a whole period too
        truck.last = wall - (1 - (i + 1) / len(trucks)) * PERIOD_S
    share, sent, behind = load.rate / len(trucks), [], 0.0
    for tick in range(round(load.seconds / PERIOD_S)):
        for i, (truck, (client, _)) in enumerate(zip(trucks, clients, strict=True)):
            due = started + (tick + (i + 1) / len(trucks)) * PERIOD_S
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            behind = max(behind, -wait)
            if made := truck.batch(share, wall):
                sent.append((client.publish(topic(truck.gateway, "gps"), made[0], qos=1), made[1]))
    for info, _ in sent:
        with contextlib.suppress(RuntimeError, ValueError):  # not sent (a lost connection): not counted
            info.wait_for_publish(60)
    elapsed = time.perf_counter() - started
    control.send(Published(sum(n for info, n in sent if info.is_published()), len(sent), elapsed, behind))
    for (client, _), truck in zip(clients, trucks, strict=True):
        client.publish(topic(truck.gateway, "state"), state(truck.gateway, "offline"), qos=1,
                       retain=True).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()


class Fleet:
    """The fleet process of one load: `start` returns once every truck is connected, `go` starts the load,
    `result` waits for its end."""

    def __init__(self, port: int, gateways: list[tuple[str, str]], load: Load) -> None:
        context = multiprocessing.get_context("spawn")  # no copy of the measuring process's threads
        self.control, child = context.Pipe()
        self.process = context.Process(target=drive, args=(port, gateways, load, child), name="fleet", daemon=True)

    def start(self, timeout: float = 120.0) -> None:
        self.process.start()
        self._receive(timeout, "connect all its trucks")

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def go(self) -> None:
        self.control.send("go")

    def result(self, timeout: float) -> Published:
        published: Published = self._receive(timeout, "finish its load")
        return published

    def _receive(self, timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        while not self.control.poll(0.5):
            if not self.process.is_alive():
                raise SystemExit(f"the fleet process ended (exit code {self.process.exitcode}) before it could {what}")
            if time.monotonic() > deadline:
                raise SystemExit(f"the fleet did not {what} within {timeout:.0f} s")
        return self.control.recv()

    def stop(self) -> None:
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
