"""Correlator throughput: committed observations and fixes applied per second by one correlator process,
and by several sharing the partitions.

    python -m bench.correlate [--events 10000] [--processes 2] [--database postgresql://postgres@127.0.0.1:5432/postgres]

Observations: cargo read out at 10 doors of a warehouse, a read every 0.3 s, against 200 open demands
of 50 items; 20 tagged trucks whose tags are not read and whose fixes put them all in the yard, so
every read also asks which vehicle is at the door (tag, dock assignment, fixes) and finds no answer.
Fixes: 100 shipments in transit on a 29 km planned route, a fix every 10 s each, so every fix runs
the route watch (corridor, stop, ETA, lateness); then the same after 20 past drives of that route are
in the history, so the ETA also reads the vehicle's recent fixes, the profile ahead and the past trips.
Each in a database of its own, analysed before the run. The baseline of the same run is ingest's floor
(bench.ingest's binary COPY plus idempotent insert, rows/s): each rate is also printed as a ratio of it.
With --processes N, the same events are then applied by N processes, each holding N-th of the
partitions (fixes by vehicle, reads by door), started together.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

from bench.eta import LONG_ROUTE, past_drives, trips
from bench.ingest import floor_copy, fresh_database
from crm_link.correlate import process_pending
from crm_link.demands import DemandRecord, upsert_demand
from crm_link.directory import upsert_customer, upsert_site, upsert_vehicle
from storage.vocabulary import PARTITIONS

T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
ROUTE = {"type": "LineString", "coordinates": [(lon, lat) for lat, lon in LONG_ROUTE]}


def _world(conn: psycopg.Connection, vehicles: int, tagged: bool) -> None:
    upsert_customer(conn, "acme", "ACME")
    upsert_site(conn, "wh", "Warehouse", *LONG_ROUTE[0], 300, doors=[f"d{i}" for i in range(10)])
    upsert_site(conn, "dc", "DC", *LONG_ROUTE[-1], 300, doors=["d1"])
    for v in range(vehicles):
        upsert_vehicle(conn, f"T{v}", tag_epc_uri=f"urn:epc:id:giai:0614141.{v}" if tagged else None)


def observations(conn: psycopg.Connection, events: int) -> None:
    _world(conn, 20, tagged=True)
    for d in range(200):
        upsert_demand(conn, "acme", f"SO-{d}", DemandRecord.model_validate({
            "origin_site_id": "wh", "destination": {"site_id": "dc"}, "vehicle_id": f"T{d % 20}",
            "items": [{"epc_uri": f"urn:epc:id:sgtin:0614141.812345.{d * 100 + i}"} for i in range(50)]}))
    minutes = events * 0.3 / 60 + 2  # a fix a minute of each truck, in the yard, for as long as the reads last
    parked = [(i, T0 + timedelta(minutes=i // 20 - 1), f"T{i % 20}", *LONG_ROUTE[0]) for i in range(int(20 * minutes))]
    reads = [(i, T0 + timedelta(seconds=i * 0.3), f"urn:epc:id:sgtin:0614141.812345.{(i % 200) * 100 + i // 200 % 50}",
              f"wh/d{i % 10}") for i in range(events)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                        "VALUES ('truck', %s, %s, %s, %s, %s, 0)", parked)
        conn.commit()
        process_pending(conn)
        cur.executemany("INSERT INTO tag_observations (gateway_id, seq, ts, epc, epc_uri, read_point, reader, antenna, "
                        "rssi_dbm, reads, first_seen, direction) "
                        "VALUES ('gw', %s, %s, 'AA', %s, %s, 'r', 1, -50, 5, %s, 'out')",
                        [(seq, ts, epc, rp, ts) for seq, ts, epc, rp in reads])


def fixes(conn: psycopg.Connection, events: int) -> None:
    _world(conn, 100, tagged=False)
    for v in range(100):
        upsert_demand(conn, "acme", f"SO-{v}", DemandRecord.model_validate({
            "origin_site_id": "wh", "destination": {"site_id": "dc"}, "vehicle_id": f"T{v}", "planned_route": ROUTE,
            "delivery_to": T0 + timedelta(hours=1), "items": [{"epc_uri": f"urn:epc:id:sgtin:0614141.812345.{v}"}]}))
    conn.execute("UPDATE demands SET status = 'in_transit', status_at = %s", (T0,))
    (lat0, lon0), (lat1, lon1) = LONG_ROUTE[1], LONG_ROUTE[2]
    rows = []
    for i in range(events):
        f = i // 100 / max(events // 100, 1)
        rows.append((i, T0 + timedelta(seconds=10 * (i // 100)), f"T{i % 100}", lat0 + f * (lat1 - lat0),
                     lon0 + f * (lon1 - lon0)))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                        "VALUES ('truck', %s, %s, %s, %s, %s, 50)", rows)


def fixes_with_history(conn: psycopg.Connection, events: int) -> None:
    past_drives(conn, trips()[1], 20, 10)  # the 29 km route at about 50 km/h, a fix every 10 s
    fixes(conn, events)


def _apply(url: str, partitions: list[int], start: multiprocessing.synchronize.Barrier,
           done: multiprocessing.Queue) -> None:
    with psycopg.connect(url) as conn:
        start.wait()
        process_pending(conn, partitions=partitions)
        done.put(time.monotonic())  # the system's clock, the same in every process; exiting is not applying


def measure(admin: str, setup: Callable[[psycopg.Connection, int], None], events: int, processes: int = 1) -> float:
    """Events applied per second by `processes` correlators, in a fresh database (dropped afterwards)."""
    url = fresh_database(admin)
    try:
        with psycopg.connect(url) as conn:
            setup(conn, events)
            conn.commit()
            conn.execute("ANALYZE")
            conn.commit()
            if processes == 1:
                started = time.perf_counter()
                process_pending(conn)
                return events / (time.perf_counter() - started)
        spawn = multiprocessing.get_context("spawn")
        start, done = spawn.Barrier(processes + 1), spawn.Queue()
        workers = [spawn.Process(target=_apply, args=(url, list(range(k, PARTITIONS, processes)), start, done))
                   for k in range(processes)]
        for w in workers:
            w.start()
        start.wait()
        started = time.monotonic()
        finished = max(done.get() for _ in workers)
        for w in workers:
            w.join()
        return events / (finished - started)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def floor(admin: str, events: int) -> float:
    """Ingest's floor in this run: rows/s of binary COPY plus the idempotent insert."""
    url = fresh_database(admin)
    try:
        return floor_copy(url, events)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=1, help="also apply the events with this many correlators")
    args = parser.parse_args()
    base = floor(args.database, args.events)
    print(f"ingest's floor (COPY + idempotent insert): {base:,.0f} rows/s")
    for name, setup in (("observations", observations), ("fixes in transit", fixes),
                        ("fixes in transit, 20 past drives of the route in the history", fixes_with_history)):
        one = measure(args.database, setup, args.events)
        line = f"{name}: {one:,.0f}/s ({one / base:.2f} of the floor)"
        if args.processes > 1:
            many = measure(args.database, setup, args.events, args.processes)
            line += f"; {args.processes} processes: {many:,.0f}/s ({many / one:.2f}x one)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
