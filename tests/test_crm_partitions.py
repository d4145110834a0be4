"""Correlators share the work by partitions: each process holds its share, and when one is SIGKILLed
mid-batch the others take its partitions over, with no status skipped or repeated and no exception
doubled."""

from __future__ import annotations

import hashlib
import os
import re
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_link.correlate import unapplied
from crm_link.demands import upsert_demand
from crm_link.directory import upsert_vehicle
from crm_link.geo import Geofence
from crm_link.partitions import PARTITION_LOCKS, Claims
from launcher.embedded import free_port
from storage.vocabulary import PARTITIONS
from tests.helpers import Processes, wait_for
from tests.test_crm_status import CUSTOMER_SITE, T0, WAREHOUSE, demand, world
from tests.test_metrics import metric, scrape

TRUCKS = 30
FIXES = 40  # per truck, every 10 s, from the warehouse to the customer's DC


def holders(conn: psycopg.Connection) -> Counter[int]:
    """Backend pid → partitions it holds."""
    return Counter(pid for (pid,) in conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s::oid "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", (PARTITION_LOCKS,)))


def test_a_rows_partition_is_the_first_byte_of_its_keys_md5(db_url: str) -> None:
    """The documented rule, the same in the database as anywhere else, so an operator can tell where a
    vehicle's fixes or a tag's reads go."""
    with psycopg.connect(db_url) as conn:
        @given(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1))
        def same(key: str) -> None:
            (partition,) = conn.execute("SELECT cargotrace_partition(%s)", (key,)).fetchone()
            assert partition == hashlib.md5(key.encode()).digest()[0] % PARTITIONS

        same()


def test_processes_share_the_partitions_and_take_over_a_lost_ones(db_url: str) -> None:
    conns = [psycopg.connect(db_url) for _ in range(3)]
    try:
        claims = [Claims() for _ in conns]
        for _ in range(2):  # the first to come takes all; on the next pass it gives back beyond its share
            held = [c.rebalance(conn) for c, conn in zip(claims, conns, strict=True)]
        assert sorted(p for h in held for p in h) == list(range(PARTITIONS))  # all held, none twice
        assert [len(h) for h in held] == [6, 6, 4]
        assert len(holders(conns[0])) == 3
        lost = conns.pop(0)
        gone = lost.info.backend_pid
        lost.close()  # its session's locks go with it, once its server process has ended

        def ended() -> bool:
            (left,) = conns[0].execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (gone,)).fetchone()
            conns[0].rollback()  # the activity view is read once per transaction
            return left == 0

        wait_for(ended, what="the lost session's end")
        held = [c.rebalance(conn) for c, conn in zip(claims[1:], conns, strict=True)]
        assert sorted(p for h in held for p in h) == list(range(PARTITIONS))
        assert [len(h) for h in held] == [8, 8]
    finally:
        for conn in conns:
            conn.close()


def _trip(i: int) -> list[tuple[float, float]]:
    """A straight drive from inside the warehouse's geofence to inside the DC's, each truck a little apart."""
    (lat0, lon0), (lat1, lon1) = WAREHOUSE, CUSTOMER_SITE
    return [(lat0 + (lat1 - lat0) * k / (FIXES - 1) + i * 1e-5, lon0 + (lon1 - lon0) * k / (FIXES - 1))
            for k in range(FIXES)]


def _fixes(trucks: range, part: slice) -> list[tuple]:
    rows = []
    for i in trucks:
        for k, (lat, lon) in list(enumerate(_trip(i)))[part]:
            rows.append((i * 1000 + k, T0 + timedelta(seconds=10 * k), f"T{i}", lat, lon))
    return rows


def _insert(conn: psycopg.Connection, rows: list[tuple]) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                        "VALUES ('truck', %s, %s, %s, %s, %s, 50)", rows)
    conn.execute("NOTIFY cargotrace_events")
    conn.commit()


@pytest.mark.timeout(180)
def test_a_correlator_killed_mid_batch_loses_nothing_and_doubles_nothing(db_url: str, tmp_path: Path) -> None:
    """Three `crm run` processes; all three held mid-batch (the items table locked), one SIGKILLed;
    the other two take over its partitions and apply every fix exactly once."""
    with world(db_url) as conn:
        for i in range(TRUCKS):
            upsert_vehicle(conn, f"T{i}")
            demand_id, _ = upsert_demand(conn, "acme", f"SO-{i}", demand(
                vehicle_id=f"T{i}", delivery_to=(T0 - timedelta(hours=2)).isoformat(),  # late from the first fix out
                items=[{"epc_uri": f"urn:epc:id:sgtin:0614141.812345.{1000 + 2 * i + n}"} for n in range(2)]))
            # Loading, one pallet of two read out: leaving opens one missing_cargo.
            conn.execute("UPDATE demands SET status = 'loading', status_at = %s WHERE id = %s", (T0, demand_id))
            conn.execute("UPDATE demand_items SET loaded_at = %s WHERE id = (SELECT min(id) FROM demand_items "
                         "WHERE demand_id = %s)", (T0, demand_id))
        conn.commit()
        ports = [free_port() for _ in range(3)]
        procs = Processes({**os.environ, "CARGOTRACE_DATABASE_URL": db_url, "CARGOTRACE_CRM_POLL_SECONDS": "0.3"},
                          tmp_path)
        try:
            for n, port in enumerate(ports):
                procs.env = {**procs.env, "CARGOTRACE_CRM_METRICS_LISTEN": f"127.0.0.1:{port}"}
                procs.start(f"crm{n}", "crm", "run")
            wait_for(lambda: len(holders(conn)) == 3 and holders(conn).total() == PARTITIONS, timeout=60,
                     what="three correlators sharing the 16 partitions")
            conn.commit()
            with psycopg.connect(db_url) as locker:
                # Each batch locks the items of its demands: it waits there, its cursors and demands held. (An
                # ACCESS EXCLUSIVE lock would take a transaction id, and hide the fixes behind the horizon.)
                locker.execute("LOCK TABLE demand_items IN EXCLUSIVE MODE")
                _insert(conn, _fixes(range(TRUCKS), slice(0, FIXES // 2)))

                def held_mid_batch() -> list[int]:
                    names = [r[0] for r in conn.execute(
                        "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name LIKE 'cargotrace crm %%' AND wait_event_type = 'Lock'")]
                    conn.commit()
                    return [int(re.sub(r"\D", "", name)) for name in names]

                waiting = wait_for(lambda: len(held_mid_batch()) == 3 and held_mid_batch(), timeout=30,
                                   what="all three correlators holding a batch")
                victim = next(n for n, (_, p) in enumerate(procs.procs) if p.pid == waiting[0])
                procs.kill(f"crm{victim}", signal.SIGKILL)
                locker.rollback()
            _insert(conn, _fixes(range(TRUCKS), slice(FIXES // 2, FIXES)))

            def done() -> bool:
                arrived = conn.execute("SELECT count(*) FROM demands WHERE status = 'arrived'").fetchone()[0]
                left = unapplied(conn, "positions")
                conn.commit()
                return arrived == TRUCKS and left == 0

            wait_for(done, timeout=90, what="every truck arrived and every fix applied")
            procs.check_alive()
            survivors = [port for n, port in enumerate(ports) if n != victim]
            applied = [metric(scrape(f"http://127.0.0.1:{port}"), "cargotrace_crm_events_total", kind="position")
                       for port in survivors]
            assert holders(conn).total() == PARTITIONS and len(holders(conn)) == 2  # taken over
        finally:
            procs.stop()

        # Every fix applied exactly once, by the two that lived: the killed one committed nothing.
        assert sum(applied) == TRUCKS * FIXES and all(n > 0 for n in applied)
        origin, destination = Geofence(*WAREHOUSE, 300), Geofence(*CUSTOMER_SITE, 250)
        for i in range(TRUCKS):
            trip = _trip(i)
            left = next(k for k, p in enumerate(trip) if not origin.contains(*p))
            came = next(k for k, p in enumerate(trip) if destination.contains(*p))
            steps = conn.execute("SELECT e.status, e.ts FROM shipment_events e JOIN demands d ON d.id = e.demand_id "
                                 "WHERE d.external_ref = %s ORDER BY e.ts", (f"SO-{i}",)).fetchall()
            assert steps == [("in_transit", T0 + timedelta(seconds=10 * left)),
                             ("arrived", T0 + timedelta(seconds=10 * came))], f"T{i}"
        opened = {kind: (n, demands) for kind, n, demands in conn.execute(
            "SELECT type, count(*), count(DISTINCT demand_id) FROM exceptions GROUP BY type")}
        assert opened.pop("late") == opened.pop("missing_cargo") == (TRUCKS, TRUCKS)
        # The trips are of a past day: the sweep finds some trucks silent since; once each, if at all.
        assert set(opened) <= {"gps_silence"} and all(n == demands for n, demands in opened.values())
