"""Freshness of the shipment feed end to end: publish the fix that changes a shipment's status → the `status`
event on that shipment's SSE stream, under levels of background fixes from trucks idle or in transit.

    python -m bench.freshness [--levels idle:1000,idle:5000,idle:7500,transit:500,transit:750,transit:1000,
                                        transit:5000] [--seconds 30] [--samples 30] [--correlators 1]
                              [--trucks 200] [--drain 60] [--database postgresql://postgres@127.0.0.1:5432/postgres]
                              [--json OUT]

The target run is `--seconds 90` (publish → SSE `status` p99 < 1 s at 5 000 in-transit fixes/s sustained for
90 s, the lag drained within 2 s once the load stops); 30 s is the default to keep a run short.

Everything runs for real, started by the benchmark: a private Mosquitto on a free port with the shipped
configuration (deploy/mosquitto: its no-loss settings, a password file, the ACL, client ids tied to user
names), and for each level a fresh database with `cargotrace ingest`, `--correlators` × `cargotrace crm run`
and `cargotrace api`, each a process of its own. The trucks are gateways of their own (their own MQTT users)
in a fleet process (bench/fleet.py): each truck has an open shipment; `idle`: loaded, standing in the
origin's yard (each fix is checked against the origin's geofence, no route watch); `transit`: on the
planned route at 50 km/h (each fix runs the route watch: corridor, stop, ETA, lateness).

The probe: `--samples` more shipments, loaded and waiting in the yard, each with its SSE stream open. Spread
over the level, the benchmark publishes each one's departure fix (outside the origin's geofence, through a
fleet gateway of its own) and times it until the stream announces `in_transit`. The samples overlap when
they take longer than their spacing, so the load never pauses for the probe.

At the end of the load: the correlator's lag (rows ingest committed, from its metrics, less the events the
correlators applied, the sum of their `cargotrace_crm_events_total`), then how long it takes to drain to 0
(waiting at most `--drain` seconds). Reported per level: publish → SSE `status` p50/p99/max (a probe that
never arrived counts as infinitely late), publish → stored (the probe fix's commit by ingest), the rate the
fleet reached against the one asked, ingest's rows/s and the correlators' events/s over the same window and
their ratio, the lag and its drain, CPU seconds of each process during the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from bench.api import log
from bench.eta import LONG_ROUTE
from bench.fleet import Fleet, Load, Published, Route
from bench.ingest import fresh_database
from bench.mosquitto import ACL, Mosquitto
from bench.probe import Sender, Stream
from bench.stack import Cpu, Stack
from crm_link.demands import DemandRecord, upsert_demand
from crm_link.directory import upsert_customer, upsert_site, upsert_vehicle
from firmware_configs.broker_credentials import hash_password, set_user
from tracking_api.keys import create_key

LEVELS = "idle:1000,idle:5000,idle:7500,transit:500,transit:750,transit:1000,transit:5000"
KEEPS_UP_S = 2.0  # drained within this once the load stops: the correlator keeps up
DEPART_M = 1_000.0  # where along the route a probe's departure fix is: outside the origin's 300 m
PROBES_GATEWAY = "probes"
INGEST_USER = "ingest"  # the shipped ACL's reader of every gateway's topics


@dataclass(frozen=True, slots=True)
class Level:
    mode: str  # idle | transit
    rate: float

    @property
    def name(self) -> str:
        return f"{self.mode}:{self.rate:g}"


def levels(text: str) -> list[Level]:
    out = []
    for part in text.split(","):
        mode, _, rate = part.strip().partition(":")
        if mode not in ("idle", "transit") or not rate.replace(".", "", 1).isdigit() or float(rate) <= 0:
            raise argparse.ArgumentTypeError(f"{part!r}: a level is idle:FIXES_PER_S or transit:FIXES_PER_S")
        out.append(Level(mode, float(rate)))
    return out


@dataclass(frozen=True, slots=True)
class World:
    vehicles: tuple[str, ...]  # the fleet's, one per truck
    probes: list[tuple[str, str]]  # (shipment ref, vehicle), loaded in the yard
    key: str  # the customer's API key


def build_world(url: str, level: Level, trucks: int, samples: int) -> World:
    """One customer, the route's two sites, a shipment per truck (loaded, or in transit) and per probe (loaded)."""
    route = {"type": "LineString", "coordinates": [(lon, lat) for lat, lon in LONG_ROUTE]}
    vehicles = tuple(f"TRK-{i:03d}" for i in range(trucks))
    probes = [f"PRB-{i:03d}" for i in range(samples)]
    due = datetime.now(UTC) + timedelta(days=1)  # far off: no `late`
    with psycopg.connect(url, autocommit=True) as conn:
        upsert_customer(conn, "acme", "ACME")
        upsert_site(conn, "wh", "Warehouse", *LONG_ROUTE[0], 300, doors=["d1"])
        upsert_site(conn, "dc", "DC", *LONG_ROUTE[-1], 300, doors=["d1"])
        for n, vehicle in enumerate(vehicles + tuple(probes)):
            upsert_vehicle(conn, vehicle)
            upsert_demand(conn, "acme", f"SO-{vehicle}", DemandRecord.model_validate({
                "origin_site_id": "wh", "destination": {"site_id": "dc"}, "vehicle_id": vehicle,
                "planned_route": route, "delivery_to": due,
                "items": [{"epc_uri": f"urn:epc:id:sgtin:0614141.812345.{n}"}]}))
        conn.execute("UPDATE demand_items SET loaded_at = now()")  # every item read out: nothing missing at departure
        conn.execute("UPDATE demands SET status = CASE WHEN vehicle_id LIKE 'TRK-%%' AND %s THEN 'in_transit' "
                     "ELSE 'loaded' END, status_at = now()", (level.mode == "transit",))
        conn.execute("ANALYZE")
        key = create_key(conn, "customer", "acme")
    return World(vehicles, [(f"SO-{vehicle}", vehicle) for vehicle in probes], key)


@dataclass(frozen=True, slots=True)
class Broker:
    mosquitto: Mosquitto
    passwords: dict[str, str]  # user → password

    def url(self, user: str) -> str:
        return f"mqtt://{user}:{self.passwords[user]}@127.0.0.1:{self.mosquitto.port}"


def start_broker(folder: Path, trucks: int) -> Broker:
    """Mosquitto with the shipped settings and ACL, a user for ingest, each truck and the probe's gateway."""
    users = [INGEST_USER, PROBES_GATEWAY, *truck_gateways(trucks)]
    passwords = {user: secrets.token_urlsafe(16) for user in users}
    text = ""
    for user, password in passwords.items():
        text = set_user(text, user, hash_password(password))
    (folder / "passwd").write_text(text)
    mosquitto = Mosquitto(folder / "broker", anonymous=False,
                          extra=f"password_file {folder / 'passwd'}\nacl_file {ACL}\n").start()
    return Broker(mosquitto, passwords)


def truck_gateways(trucks: int) -> list[str]:
    return [f"truck-{i:03d}" for i in range(trucks)]


@dataclass
class Result:
    level: str
    asked: float  # fixes/s
    reached: float  # fixes/s the fleet had acknowledged, over its whole load
    behind_s: float  # the latest the fleet's publisher sent a batch against its schedule
    load_s: float
    latencies: list[float]  # publish → SSE `status`, s; inf: never arrived
    stored: list[float]  # publish → stored by ingest, s, in the same order; inf: never stored
    ingest_rows_s: float
    applied_s: float
    lag: int  # at the end of the load
    drained_s: float | None  # None: not within --drain
    left: int  # events not applied when the drain ended
    cpu: dict[str, float]  # CPU seconds during the load, per process

    @property
    def ratio(self) -> float:
        return self.applied_s / self.ingest_rows_s if self.ingest_rows_s else 0.0


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: an actual sample (or inf, for a probe that never arrived)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan


def counts(stack: Stack) -> tuple[int, int]:
    """(rows committed by ingest, events applied by the correlators); applied read first, so that the lag
    is never below what it was (ingest's count can only have grown meanwhile)."""
    applied = stack.applied()
    return stack.committed(), applied


async def drain(stack: Stack, total: int, bound: float) -> tuple[float | None, int]:
    """Seconds until the correlators applied all `total` events (None after `bound`), and how many were left."""
    started = time.perf_counter()
    while (left := total - await asyncio.to_thread(stack.applied)) > 0:
        if time.perf_counter() - started > bound:
            return None, left
        await asyncio.sleep(0.2)
    return time.perf_counter() - started, 0


async def measure(level: Level, args: argparse.Namespace, broker: Broker, folder: Path) -> Result:
    """One level in a database of its own, with services of its own: one level's backlog never leaks into the next."""
    url = fresh_database(args.database, "bench_freshness")
    logs = folder / level.name.replace(":", "-")
    logs.mkdir()
    try:
        with ExitStack() as cleanup:
            world = build_world(url, level, args.trucks, args.samples)
            stack = Stack(url, broker.url(INGEST_USER), args.correlators, logs)
            cleanup.callback(stack.stop)
            fleet = Fleet(broker.mosquitto.port, [(g, broker.passwords[g]) for g in truck_gateways(args.trucks)],
                          Load(level.mode, level.rate, args.seconds, world.vehicles, tuple(LONG_ROUTE)))
            cleanup.callback(fleet.stop)
            await asyncio.to_thread(stack.wait_ready)
            await asyncio.to_thread(fleet.start)
            sender = Sender(broker.mosquitto.port, PROBES_GATEWAY, broker.passwords[PROBES_GATEWAY])
            cleanup.callback(sender.close)
            return await observe(level, args, world, stack, fleet, sender,
                                 {**stack.pids(), "mosquitto": broker.mosquitto.pid, "fleet": fleet.pid,
                                  "bench": os.getpid()})
    finally:
        if not args.keep:
            with psycopg.connect(args.database, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


async def observe(level: Level, args: argparse.Namespace, world: World, stack: Stack, fleet: Fleet, sender: Sender,
                  pids: dict[str, int]) -> Result:
    """With every probe's stream open: the load and the probes, then the lag and its drain."""
    limits = httpx.Limits(max_connections=args.samples + 4)
    async with httpx.AsyncClient(base_url=stack.api, limits=limits, timeout=httpx.Timeout(30, read=None)) as client:
        streams = [Stream(client, ref, world.key, "in_transit") for ref, _ in world.probes]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in streams)), 60)
            log(f"{level.name}: {args.trucks} trucks connected, {len(streams)} probe streams open; load for "
                f"{args.seconds:g} s")
            cpu = await asyncio.to_thread(Cpu, pids, args.database, stack.url.rsplit("/", 1)[1])
            before = await asyncio.to_thread(counts, stack)
            await probe_during_load(args, fleet, sender, world)
            published: Published = await asyncio.to_thread(fleet.result, args.seconds + 120)
            used = await asyncio.to_thread(cpu.used)
            committed, applied = await asyncio.to_thread(counts, stack)
            reached = published.fixes / published.seconds
            log(f"{level.name}: load done, {reached:,.0f} fixes/s reached of {level.rate:,.0f} asked; correlator "
                f"lag {committed - applied:,} events; draining (at most {args.drain:g} s)")
            drained, left = await drain(stack, published.fixes + sender.acknowledged(), args.drain)
            log(f"{level.name}: " + (f"drained in {drained:.1f} s" if drained is not None else
                                     f"not drained after {args.drain:g} s, {left:,} events left"))
            # the last probes' events are on their way once the lag is 0
            await asyncio.wait([stream.task for stream in streams], timeout=5 if drained is not None else 0.1)
        finally:
            for stream in streams:
                await stream.close()
    latencies = [s.arrived - t if s.arrived is not None else math.inf
                 for s, (t, _) in zip(streams, sender.sent_at, strict=True)]
    stored = await asyncio.to_thread(stored_after, stack.url, world, sender.sent_at)
    return Result(level.name, level.rate, reached, published.behind_s, published.seconds, latencies, stored,
                  (committed - before[0]) / published.seconds, (applied - before[1]) / published.seconds,
                  committed - applied, drained, left, used)


async def probe_during_load(args: argparse.Namespace, fleet: Fleet, sender: Sender, world: World) -> None:
    """Start the load; publish each probe's departure fix on its schedule, spread over the load."""
    lat, lon, _ = Route(tuple(LONG_ROUTE)).at(DEPART_M)
    warmup = min(5.0, args.seconds / 5)
    spacing = (args.seconds - warmup) / args.samples
    fleet.go()
    started = time.perf_counter()
    for i, (_, vehicle) in enumerate(world.probes):
        await asyncio.sleep(max(0.0, started + warmup + i * spacing - time.perf_counter()))
        sender.send(vehicle, lat, lon)


def stored_after(url: str, world: World, sent: list[tuple[float, float]]) -> list[float]:
    """Publish → stored of each probe fix, in the probes' order (ingest's commit, by the row's received_at; inf
    for one never stored)."""
    with psycopg.connect(url) as conn:
        received = dict(conn.execute("SELECT vehicle_id, extract(epoch FROM received_at)::float8 FROM positions "
                                     "WHERE gateway_id = %s", (PROBES_GATEWAY,)).fetchall())
    return [received.get(vehicle, math.inf) - at for (_, vehicle), (_, at) in zip(world.probes, sent, strict=True)]


def seconds(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.2f} s"


def verdict(r: Result) -> str:
    if r.drained_s is None:
        return f"no: {r.lag:,} behind at the end, {r.left:,} still after the drain"
    if r.drained_s <= KEEPS_UP_S:
        return f"yes ({r.drained_s:.1f} s to drain)"
    return f"behind: {r.lag:,} at the end, {r.drained_s:.1f} s to drain"


def report(results: list[Result], args: argparse.Namespace) -> str:
    lines = [f"{args.trucks} trucks, {args.samples} probes per level, {args.seconds:g} s of load per level, "
             f"{args.correlators} correlator(s)", "",
             "| level (fixes/s) | reached | publish → SSE status p50 / p99 / max | arrived | publish → stored "
             "p50 / p99 | ingest rows/s | correlator events/s | ratio | correlator keeps up? |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        short = " (publisher fell short)" if r.reached < 0.95 * r.asked else ""
        arrived = sum(not math.isinf(x) for x in r.latencies)
        lines.append(
            f"| {r.level} | {r.reached:,.0f}{short} | {seconds(percentile(r.latencies, 50))} / "
            f"{seconds(percentile(r.latencies, 99))} / {seconds(max(r.latencies))} | {arrived}/{len(r.latencies)} | "
            f"{seconds(percentile(r.stored, 50))} / {seconds(percentile(r.stored, 99))} | {r.ingest_rows_s:,.0f} | "
            f"{r.applied_s:,.0f} | {r.ratio:.2f} | {verdict(r)} |")
    names = [name for name in results[0].cpu if not name.startswith("crm-")] if results else []
    lines += ["", "CPU seconds per second of load (crm: all correlators together)", "",
              "| level | " + " | ".join(["crm", *names]) + " |", "|---" * (len(names) + 2) + "|"]
    for r in results:
        crm = sum(v for k, v in r.cpu.items() if k.startswith("crm-"))
        lines.append(f"| {r.level} | " + " | ".join(f"{v / r.load_s:.2f}" for v in [crm, *(r.cpu[n] for n in names)])
                     + " |")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[Result]:
    folder = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    log(f"logs in {folder}")
    broker = start_broker(folder, args.trucks)
    try:
        results = []
        for level in args.levels:
            results.append(await measure(level, args, broker, folder))
        return results
    finally:
        broker.mosquitto.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=levels, default=levels(LEVELS),
                        help=f"background load, idle:FIXES_PER_S or transit:FIXES_PER_S, comma-separated "
                             f"(default {LEVELS})")
    parser.add_argument("--seconds", type=float, default=30.0, help="load per level (the target run: 90)")
    parser.add_argument("--samples", type=int, default=30, help="probes per level")
    parser.add_argument("--correlators", type=int, default=1, metavar="N", help="`cargotrace crm run` processes")
    parser.add_argument("--trucks", type=int, default=200)
    parser.add_argument("--drain", type=float, default=60.0, help="how long to wait for the lag to drain, seconds")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="an admin URL: each level gets (and drops) a database of its own")
    parser.add_argument("--keep", action="store_true", help="keep each level's database")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    args = parser.parse_args()
    if args.samples < 1 or args.trucks < 1 or args.correlators < 1 or args.seconds < 1:
        parser.error("--samples, --trucks and --correlators need at least 1, --seconds at least 1")
    results = asyncio.run(run(args))
    print(report(results, args))
    if args.json:
        settings = {**vars(args), "levels": [level.name for level in args.levels], "json": None}
        args.json.write_text(json.dumps({"settings": settings, "levels": [as_json(r) for r in results]}, indent=1,
                                        default=str))


def as_json(r: Result) -> dict:
    """The result with its percentiles; a probe that never arrived is null (JSON has no infinity)."""
    row = {**asdict(r), "ratio": r.ratio, "latencies": [None if math.isinf(x) else x for x in r.latencies],
           "stored": [None if math.isinf(x) else x for x in r.stored]}
    for name, values in (("latency", r.latencies), ("stored", r.stored)):
        for label, value in (("p50", percentile(values, 50)), ("p99", percentile(values, 99)),
                             ("max", max(values, default=math.nan))):
            row[f"{name}_{label}"] = None if math.isinf(value) or math.isnan(value) else value
    return row


if __name__ == "__main__":
    main()
