"""API latency under load: shipment status at a constant request rate while ingest writes.

    python -m bench.api [--rows 10000000] [--rate 200] [--seconds 60] [--ingest-rate 5000]
                        [--database postgresql://postgres@127.0.0.1:5432/postgres] [--broker mqtt://127.0.0.1:1883]
                        [--keep | --reuse postgresql://postgres@127.0.0.1:5432/bench_api_…]

Set-up, in a database of its own: `--rows` rows in the time-series tables (half fixes, half tag
observations, written with INSERT … SELECT generate_series), `--demands` shipments with three items
and their status events for `--customers` customers, one API key per customer. Then, as separate
processes, `cargotrace api` and `cargotrace ingest`; a publisher feeds ingest `--ingest-rate`
events/s for the whole measurement.

Load is open-loop: request i is due at start + i / rate and its latency counts from that moment,
so a slow answer delays the count of the requests queued behind it too (no coordinated omission).
Measured in the same run, at the same rate:
(a) GET /v1/shipments/{ref} with a customer key: the number that matters (target p99 < 50 ms);
(b) GET /healthz: the HTTP stack, key-less, one trivial query;
(c) the same shipment read straight through psycopg under the customer's tenant, no HTTP.
Prints p50/p90/p99/max of each and the ratios a/b and a/c.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from bench.ingest import EVENTS_PER_MESSAGE, messages, publisher
from common.contract import topic
from launcher.embedded import free_port, wait_for_port
from storage.migrate import migrate
from tracking_api import queries
from tracking_api.keys import create_key

FILL = """
INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh)
SELECT 'fill-' || (i %% 200), i, timestamptz '2026-06-01' + i * interval '500 ms',
       'TRK-' || lpad((i %% 200)::text, 3, '0'),
       31 + (i %% 10000) * 1e-5, 121 + (i %% 7919) * 1e-5, (i %% 90)::real
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) i;
INSERT INTO tag_observations (gateway_id, seq, ts, epc, epc_uri, read_point, reader, antenna, reads, first_seen,
                              direction)
SELECT 'dock-' || (i %% 40), i, timestamptz '2026-06-01' + i * interval '500 ms', lpad(to_hex(i), 24, '0'),
       'urn:epc:id:sgtin:0614141.812345.' || i, 'wh-sh1/door-' || lpad((i %% 40)::text, 2, '0'), 'r', 1, 3,
       timestamptz '2026-06-01' + i * interval '500 ms', 'out'
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) i;
"""

DEMANDS = """
INSERT INTO sites (id, name, lat, lon) VALUES ('wh-sh1', 'Warehouse', 31.23, 121.47), ('dc', 'DC', 31.30, 121.55);
INSERT INTO customers (id, name) SELECT 'cust-' || c, 'Customer ' || c FROM generate_series(1, %(customers)s::int) c;
INSERT INTO vehicles (id) SELECT 'TRK-' || lpad(v::text, 3, '0') FROM generate_series(0, 199) v;
INSERT INTO demands (customer_id, external_ref, origin_site_id, destination_site_id, vehicle_id, status, delivery_to)
SELECT 'cust-' || (1 + d %% %(customers)s::int), 'SO-' || d, 'wh-sh1', 'dc', 'TRK-' || lpad((d %% 200)::text, 3, '0'),
       (ARRAY['pending','loading','loaded','in_transit','arrived','delivered'])[1 + d %% 6], now() + interval '1 day'
FROM generate_series(1, %(demands)s::int) d;
INSERT INTO demand_items (demand_id, epc_uri, loaded_at)
SELECT d.id, 'urn:epc:id:sgtin:0614141.812345.' || (d.id * 3 + k), CASE WHEN d.status <> 'pending' THEN now() END
FROM demands d, generate_series(0, 2) k;
INSERT INTO shipment_events (demand_id, status, ts, place)
SELECT d.id, s.status, now() - (6 - s.rank) * interval '1 hour', 'wh-sh1/door-03'
FROM demands d
JOIN (VALUES ('loading', 1), ('loaded', 2), ('in_transit', 3), ('arrived', 4), ('delivered', 5)) s(status, rank)
  ON s.rank <= array_position(ARRAY['pending','loading','loaded','in_transit','arrived','delivered'], d.status) - 1;
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(conn: psycopg.Connection, script: str, params: dict[str, int]) -> None:
    for statement in script.split(";\n"):  # one statement per execute: parameters are bound server-side
        if statement.strip():
            conn.execute(statement, params)


def build(admin: str, rows: int, demands: int, customers: int) -> str:
    name = f"bench_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + "/" + name
    migrate(url)
    step = 1_000_000
    with psycopg.connect(url, autocommit=True) as conn:
        half = rows // 2
        for lo in range(1, half + 1, step):
            run(conn, FILL, {"lo": lo, "hi": min(lo + step - 1, half)})
            log(f"time-series rows: {2 * min(lo + step - 1, half):,} of {rows:,}")
        run(conn, DEMANDS, {"demands": demands, "customers": customers})
        conn.execute("VACUUM ANALYZE")
    log(f"{demands:,} shipments for {customers} customers")
    return url


def customer_keys(url: str) -> dict[str, str]:
    """A fresh key per customer (only their hashes are stored, so a kept database needs new ones)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {c: create_key(conn, "customer", c) for (c,) in conn.execute("SELECT id FROM customers").fetchall()}


class Ingest:
    """`cargotrace ingest` fed at a steady events/s from a publisher thread until stopped."""

    def __init__(self, url: str, broker: str, rate: int, folder: Path) -> None:
        group = f"benchapi{uuid.uuid4().hex[:6]}"
        env = {**os.environ, "CARGOTRACE_DATABASE_URL": url, "CARGOTRACE_MQTT_URL": broker,
               "CARGOTRACE_INGEST_CLIENT_ID": group, "CARGOTRACE_INGEST_SHARED_GROUP": group,
               # a session of this run only: the broker forgets it, and stops queueing for it, at the end
               "CARGOTRACE_INGEST_SESSION_EXPIRY_S": "0"}
        self.log = folder / "ingest.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", "ingest"], env=env, stdout=out,
                                         stderr=out)
        self.broker, self.rate, self.stop, self.sent = broker, rate, threading.Event(), 0
        self.thread = threading.Thread(target=self._publish, daemon=True)

    def start(self) -> None:
        deadline = time.monotonic() + 30
        while b"subscribed" not in self.log.read_bytes():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"ingest did not subscribe: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.thread.start()

    def _publish(self) -> None:
        client, gateway = publisher(self.broker), f"bench-api-{uuid.uuid4().hex[:6]}"
        start = time.perf_counter()
        while not self.stop.is_set():
            due = start + self.sent / self.rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            for payload in messages(gateway, self.sent + 1, EVENTS_PER_MESSAGE):  # one message
                client.publish(topic(gateway, "gps"), payload, qos=1)
            self.sent += EVENTS_PER_MESSAGE
        client.loop_stop()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(10)
        self.proc.terminate()
        self.proc.wait(15)


async def open_loop(call: object, rate: int, seconds: float, in_flight: int = 64) -> list[float]:
    """Latencies (s) of `call()` issued at `rate`/s, each counted from the moment it was due. Requests
    are started on schedule; at most `in_flight` run at once (the client's connections) and the rest
    wait their turn with their clock running."""
    n, latencies, slots = int(rate * seconds), [], asyncio.Semaphore(in_flight)
    start = time.perf_counter()

    async def one(due: float) -> None:
        async with slots:
            await call()  # type: ignore[operator]
        latencies.append(time.perf_counter() - due)

    tasks = []
    for i in range(n):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    return latencies


async def http_load(base: str, paths: list[tuple[str, dict[str, str]]], rate: int, seconds: float) -> list[float]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    dropped = 0
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        async def call() -> None:
            nonlocal dropped
            path, headers = random.choice(paths)
            for attempt in range(3):  # a connection the server dropped: sent again, its clock still running
                try:
                    response = await client.get(path, headers=headers)
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
                    dropped += 1
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.text[:200]}")
        latencies = await open_loop(call, rate, seconds)
    if dropped:
        log(f"{dropped} requests sent again after a dropped connection (their latency includes it)")
    return latencies


def direct_load(url: str, refs: list[tuple[str, str]], rate: int, seconds: float) -> list[float]:
    """(c): the shipment query through psycopg under the tenant, requests due at the same rate."""
    latencies = []
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE cargotrace_api")
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            due = start + i / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            customer, ref = random.choice(refs)
            with conn.transaction():
                conn.execute("SELECT set_config('cargotrace.role', 'customer', true), "
                             "set_config('cargotrace.customer_id', %s, true)", (customer,))
                assert queries.shipment(conn, customer, ref) is not None
            latencies.append(time.perf_counter() - due)
    return latencies


def summary(label: str, latencies: list[float]) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100)
    row = {"p50": q[49] * 1000, "p90": q[89] * 1000, "p99": q[98] * 1000, "max": max(latencies) * 1000}
    print(f"{label:<44} n={len(latencies):>6}  p50 {row['p50']:7.2f} ms  p90 {row['p90']:7.2f} ms  "
          f"p99 {row['p99']:7.2f} ms  max {row['max']:7.1f} ms")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows in the time-series tables")
    parser.add_argument("--demands", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--rate", type=int, default=200, help="requests per second")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--ingest-rate", type=int, default=5000, help="events per second written meanwhile")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="an admin URL: the benchmark creates (and drops) a database of its own")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", metavar="URL", help="measure on a database kept by an earlier run (implies --keep)")
    args = parser.parse_args()

    url = args.reuse or build(args.database, args.rows, args.demands, args.customers)
    keys = customer_keys(url)
    with psycopg.connect(url) as conn:
        refs = conn.execute("SELECT customer_id, external_ref FROM demands").fetchall()
        rows = conn.execute("SELECT (SELECT count(*) FROM positions) + (SELECT count(*) FROM tag_observations)"
                            ).fetchone()[0]
    paths = [(f"/v1/shipments/{ref}", {"Authorization": f"Bearer {keys[customer]}"}) for customer, ref in refs]
    folder = Path(tempfile.mkdtemp(prefix="bench-api-"))
    port = free_port()
    env = {**os.environ, "CARGOTRACE_DATABASE_URL": url, "CARGOTRACE_API_RATE_LIMIT_PER_MINUTE": "0"}
    with (folder / "api.log").open("wb") as out:
        api = subprocess.Popen([sys.executable, "-m", "launcher.cli", "api", "--port", str(port)], env=env,
                               stdout=out, stderr=out)
    ingest = Ingest(url, args.broker, args.ingest_rate, folder)
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        asyncio.run(http_load(base, paths[:200], 50, 2))  # warm the pool and the caches
        ingest.start()
        log(f"measuring {args.seconds:.0f} s per path at {args.rate} requests/s, ingest at {args.ingest_rate} ev/s")
        print(f"\n{rows:,} time-series rows, {len(refs):,} shipments, {args.rate} requests/s, "
              f"ingest {args.ingest_rate} events/s")
        a = summary("(a) GET /v1/shipments/{ref}", asyncio.run(http_load(base, paths, args.rate, args.seconds)))
        b = summary("(b) GET /healthz", asyncio.run(http_load(base, [("/healthz", {})], args.rate, args.seconds)))
        c = summary("(c) shipment query via psycopg, no HTTP", direct_load(url, refs, args.rate, args.seconds))
        print(f"ratios p99: a/b {a['p99'] / b['p99']:.2f}  a/c {a['p99'] / c['p99']:.2f};  "
              f"p50: a/b {a['p50'] / b['p50']:.2f}  a/c {a['p50'] / c['p50']:.2f}")
        print(f"target p99 < 50 ms: {'met' if a['p99'] < 50 else 'missed'}; ingest published {ingest.sent:,} events")
    finally:
        ingest.close()
        api.terminate()
        api.wait(15)
        if not (args.keep or args.reuse):
            with psycopg.connect(args.database, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


if __name__ == "__main__":
    main()
