"""Ingest cost against the floor of an idempotent write, measured in one run on the same tables.

    python -m bench.ingest [--events 500000] [--database postgresql://...] [--broker mqtt://127.0.0.1:1883]
    python -m bench.ingest --broker nats://127.0.0.1:4222,nats://... --mqtt mqtt://127.0.0.1:1883,mqtt://... \
        [--workers 3]

(a) binary COPY of N events into the staging table plus the idempotent insert, in batches of 2 000
    (the floor cost of an idempotent write);
(b) our path: publisher → broker → `cargotrace ingest` (separate processes) → committed rows; with
    --workers N, for 1, 2, … N workers sharing the stream;
(c) a naive bridge: one INSERT and one commit per message of one event (measured on a sample).
Prints rows/s of each and the ratios b/a and b/c, then the publish → commit delay at a steady rate.

The broker is Mosquitto (mqtt://, workers in one shared subscription) or the clustered broker (nats://
URLs of its nodes: the publishers speak MQTT to the nodes' listeners named by --mqtt, one connection to
each, and the workers share JetStream's consumer, created first as `cargotrace broker init` does).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg

from common.contract import GPS_SCHEMA, batch, iso_ms, topic
from ingest.jetstream import init
from ingest.validate import parse
from ingest.writer import Accepted, Batch, Writer
from storage.migrate import migrate

EVENTS_PER_MESSAGE = 100
BASE = datetime(2026, 11, 2, tzinfo=UTC)


def event(seq: int) -> dict:
    return {"seq": seq, "vehicle": f"TRK-{seq % 50:03d}", "ts": iso_ms(BASE + timedelta(milliseconds=seq * 10)),
            "lat": 31.2 + (seq % 1000) * 1e-5, "lon": 121.4, "speed_kmh": 40.0, "course_deg": 90.0, "hdop": 0.9,
            "sats": 9, "quality": 1, "alt_m": 12.0}


def messages(gateway: str, first_seq: int, n_events: int) -> list[bytes]:
    return [batch(GPS_SCHEMA, gateway, [event(s) for s in range(start, min(start + EVENTS_PER_MESSAGE,
                                                                             first_seq + n_events))])
            for start in range(first_seq, first_seq + n_events, EVENTS_PER_MESSAGE)]


def fresh_database(admin: str, prefix: str = "bench_ingest") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + "/" + name
    migrate(url)
    return url


def count(url: str, gateway: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM positions WHERE gateway_id = %s", (gateway,)).fetchone()[0]


def floor_copy(url: str, n: int, batch_rows: int = 2000, gateway: str = "bench-a") -> float:
    """(a): rows already parsed, only COPY + idempotent insert per batch (one commit each) of 2 000."""
    name = topic(gateway, "gps")
    accepted = [Accepted(name, m, parse(name, m, 10**7, now=BASE)) for m in messages(gateway, 1, n)]
    per_batch = max(1, batch_rows // EVENTS_PER_MESSAGE)
    with psycopg.connect(url) as conn:
        writer = Writer(conn)
        start = time.perf_counter()
        for i in range(0, len(accepted), per_batch):
            writer.write(Batch(accepted=accepted[i:i + per_batch]))
        return n / (time.perf_counter() - start)


def naive(url: str, n: int) -> float:
    """(c): one INSERT and one commit per one-event message."""
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        for seq in range(1, n + 1):
            e = event(seq)
            conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh, course_deg, "
                         "hdop, sats, quality, alt_m) VALUES ('bench-c', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                         "ON CONFLICT DO NOTHING", (e["seq"], e["ts"], e["vehicle"], e["lat"], e["lon"], e["speed_kmh"],
                                                   e["course_deg"], e["hdop"], e["sats"], e["quality"], e["alt_m"]))
            conn.commit()
        return n / (time.perf_counter() - start)


@dataclass(frozen=True)
class Broker:
    """Where the publishers connect and what the ingest processes are told."""

    url: str  # mqtt://… or the cluster's nats://…,nats://…
    mqtt: list[str]  # the MQTT listeners the publishers use, one connection each

    @property
    def clustered(self) -> bool:
        return self.url.startswith(("nats://", "tls://"))

    def env(self, run: str, worker: int) -> dict[str, str]:
        if self.clustered:
            return {"CARGOTRACE_BROKER_URL": self.url}
        return {"CARGOTRACE_MQTT_URL": self.url, "CARGOTRACE_INGEST_CLIENT_ID": f"{run}-{worker}",
                "CARGOTRACE_INGEST_SHARED_GROUP": run}

    @property
    def ready(self) -> bytes:
        return b"bound to consumer" if self.clustered else b"subscribed"


@contextmanager
def ingest(url: str, broker: Broker, workers: int) -> Iterator[None]:
    """`workers` ingest processes sharing the stream, ready to receive; terminated on exit."""
    run, folder = f"bench{uuid.uuid4().hex[:6]}", Path(tempfile.mkdtemp())
    procs = []
    for i in range(workers):
        env = {**os.environ, "CARGOTRACE_DATABASE_URL": url, **broker.env(run, i)}
        with (folder / f"ingest-{i}.log").open("wb") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "launcher.cli", "ingest"], env=env, stdout=out,
                                          stderr=out))
    try:
        deadline = time.monotonic() + 30
        while not all(broker.ready in (folder / f"ingest-{i}.log").read_bytes() for i in range(workers)):
            if time.monotonic() > deadline:
                raise SystemExit(f"ingest did not start: see {folder}")
            time.sleep(0.1)
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)


def publisher(broker: str) -> mqtt.Client:
    host, port = broker.removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(1000)
    client.connect(host, int(port))
    client.loop_start()
    return client


def publishers(broker: Broker) -> list[mqtt.Client]:
    return [publisher(url) for url in broker.mqtt]


def end_to_end(url: str, broker: Broker, n: int, workers: int = 1) -> float:
    """(b): publish everything, time until the last row is committed by the ingest processes."""
    gateway = f"bench-b{workers}-{uuid.uuid4().hex[:4]}"
    with ingest(url, broker, workers):
        payloads = messages(gateway, 1, n)
        clients = publishers(broker)
        start = time.perf_counter()
        for i, payload in enumerate(payloads):
            clients[i % len(clients)].publish(topic(gateway, "gps"), payload, qos=1)
        while count(url, gateway) < n:
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        for client in clients:
            client.loop_stop()
        return n / elapsed


def delay(url: str, broker: Broker, rate: int, seconds: int) -> list[float]:
    """Publish → commit delay of 10-event messages at a steady rate (events/s), one worker."""
    gateway = f"bench-d-{uuid.uuid4().hex[:4]}"
    with ingest(url, broker, 1):
        client = publishers(broker)[0]
        sent: dict[int, float] = {}
        per_message = 10
        interval = per_message / rate
        start = time.perf_counter()
        seq = 10**9
        for i in range(int(rate * seconds / per_message)):
            target = start + i * interval
            while time.perf_counter() < target:
                time.sleep(0.0005)
            body = batch(GPS_SCHEMA, gateway, [{**event(s), "ts": iso_ms(datetime.now(UTC))}
                                                for s in range(seq, seq + per_message)])
            sent[seq] = time.time()
            client.publish(topic(gateway, "gps"), body, qos=1)
            seq += per_message
        time.sleep(3)  # the last messages' way through
        client.loop_stop()
    with psycopg.connect(url) as conn:
        committed = dict(conn.execute("SELECT seq, extract(epoch FROM received_at) FROM positions "
                                      "WHERE gateway_id = %s AND seq = ANY(%s)", (gateway, list(sent))).fetchall())
    return sorted(float(committed[s]) - t for s, t in sent.items() if s in committed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--naive-events", type=int, default=5_000, help="sample size for the naive bridge")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883",
                        help="mqtt://HOST:PORT (Mosquitto), or the NATS cluster's nats://HOST:PORT,… (then --mqtt)")
    parser.add_argument("--mqtt", help="with a NATS cluster: its nodes' MQTT listeners, mqtt://HOST:PORT,…")
    parser.add_argument("--rate", type=int, default=5000, help="events/s for the delay measurement")
    parser.add_argument("--seconds", type=int, default=20, help="how long the delay is measured")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="(a), then (b) with 1, 2, … N ingest processes sharing the stream, and their ratios")
    args = parser.parse_args()
    broker = Broker(args.broker, (args.mqtt or args.broker).split(","))
    if broker.clustered and not args.mqtt:
        parser.error("a NATS cluster needs --mqtt: the MQTT listeners of its nodes")
    if broker.clustered:
        print(asyncio.run(init(broker.url, 3, 10.0)), flush=True)

    url = fresh_database(args.database)
    a = floor_copy(url, args.events)
    print(f"(a) COPY + idempotent insert   {a:12,.0f} rows/s", flush=True)
    if args.workers:
        for workers in range(1, args.workers + 1):
            b = end_to_end(url, broker, args.events, workers)
            print(f"(b) {workers} ingest worker(s)  {b:12,.0f} rows/s   b/a = {b / a:.2f}", flush=True)
        return
    b = end_to_end(url, broker, args.events)
    print(f"(b) publisher → broker → ingest {b:12,.0f} rows/s", flush=True)
    c = naive(url, args.naive_events)
    print(f"(c) naive INSERT+commit/message {c:12,.0f} rows/s  (sample of {args.naive_events:,})", flush=True)
    print(f"b/a = {b / a:.2f}   b/c = {b / c:.1f}")
    delays = delay(url, broker, args.rate, args.seconds)
    if delays:
        p50, p99 = statistics.median(delays), delays[max(0, int(len(delays) * 0.99) - 1)]
        print(f"publish → commit at {args.rate:,} events/s: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
              f"({len(delays):,} messages)")


if __name__ == "__main__":
    main()
