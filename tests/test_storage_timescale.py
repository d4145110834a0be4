"""The TimescaleDB path of the schema, exercised for real: the migrations and their compression,
retention and continuous-aggregate statements run in PostgreSQL + TimescaleDB 2.23 compiled to WASM
(PGlite, driven by Node), and give the same answers as the plain-PostgreSQL path on the real server."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import psycopg

from storage.migrate import available

PGLITE = Path(__file__).resolve().parent / "pglite"
MIGRATIONS = Path(__file__).resolve().parent.parent / "storage" / "migrations"

SAMPLE = """
INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh)
SELECT 'truck', i, timestamptz '2026-11-02 06:00:00+00' + i * interval '50 seconds',
       CASE WHEN i % 3 = 0 THEN 'TRK-7' ELSE 'TRK-42' END, 31 + i * 0.0001, 121 + i * 0.0001, (i % 90)::real
FROM generate_series(1, 400) i;
INSERT INTO tag_observations (gateway_id, seq, ts, epc, read_point, reader, antenna, rssi_dbm, reads, first_seen,
                              direction)
SELECT 'dock', i, timestamptz '2026-11-02 06:00:00+00' + i * interval '20 seconds', lpad(i::text, 24, '0'),
       CASE WHEN i % 4 = 0 THEN 'wh-sh1/door-04' ELSE 'wh-sh1/door-03' END, 'r', 1, -50, 1 + i % 7,
       timestamptz '2026-11-02 06:00:00+00' + i * interval '20 seconds',
       CASE WHEN i % 5 = 0 THEN NULL WHEN i % 2 = 0 THEN 'in' ELSE 'out' END
FROM generate_series(1, 900) i;
"""
SUMMARIES = [
    "SELECT vehicle_id, bucket, fixes, round(lat::numeric, 6) AS lat, round(lon::numeric, 6) AS lon, max_speed_kmh "
    "FROM positions_hourly ORDER BY vehicle_id, bucket",
    "SELECT read_point, bucket, passages, raw_reads, passages_out, passages_in "
    "FROM door_throughput_hourly ORDER BY read_point, bucket",
]


def pglite(tmp_path: Path, *queries: str, sql: str = "") -> list[list[dict]]:
    assert shutil.which("node"), "node is needed for the TimescaleDB check (make test installs it)"
    assert (PGLITE / "node_modules").is_dir(), "run `npm ci --prefix tests/pglite` (make test does)"
    files = [str(MIGRATIONS / f"{version}.sql") for version, _ in available()]
    if sql:
        extra = tmp_path / "extra.sql"
        extra.write_text(sql)
        files.append(str(extra))
    out = subprocess.run(["node", str(PGLITE / "run.mjs"), *files, "--", *queries], capture_output=True, text=True,
                         timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "error" not in result, result.get("error")
    return result["results"]


def test_migrations_build_hypertables_with_compression_retention_and_aggregates(tmp_path: Path) -> None:
    hypertables, compression, jobs = pglite(
        tmp_path,
        "SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1",
        "SELECT hypertable_name, attname FROM timescaledb_information.compression_settings "
        "WHERE segmentby_column_index IS NOT NULL ORDER BY 1",
        "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs "
        "WHERE job_id >= 1000 ORDER BY 1, 2")
    assert {h["hypertable_name"] for h in hypertables} >= {"positions", "tag_observations", "gateway_states"}
    assert {(c["hypertable_name"], c["attname"]) for c in compression} == {
        ("positions", "vehicle_id"), ("tag_observations", "read_point")}
    kinds = {(j["proc_name"], j["hypertable_name"]) for j in jobs}
    assert {("policy_compression", "positions"), ("policy_compression", "tag_observations"),
            ("policy_retention", "positions"), ("policy_retention", "tag_observations"),
            ("policy_retention", "gateway_states")} <= kinds
    refreshes = [j for j in jobs if j["proc_name"] == "policy_refresh_continuous_aggregate"]
    assert len(refreshes) == 2
    # Retention never reaches into an aggregate's refresh window (that would delete its history).
    retention_days = min(int(j["config"]["drop_after"].split()[0])
                         for j in jobs if j["proc_name"] == "policy_retention")
    assert all("3 days" in j["config"]["start_offset"] for j in refreshes) and retention_days > 3


def _value(value: object) -> object:
    """One comparable form for both drivers: times as ISO text, numbers (psycopg's Decimal, PGlite's
    numeric strings) as floats."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value[:2] == "20" and "T" in value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return value


def _plain(rows: list) -> list[dict]:
    return [{key: _value(value) for key, value in dict(row).items()} for row in rows]


def test_the_timescale_and_plain_paths_give_the_same_summaries(tmp_path: Path, db_url: str) -> None:
    timescale = pglite(tmp_path, *SUMMARIES, sql=SAMPLE)
    with psycopg.connect(db_url) as conn:
        conn.execute(SAMPLE)
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        plain = [cur.execute(query).fetchall() for query in SUMMARIES]
    assert len(plain[0]) > 5 and len(plain[1]) > 5
    for ours, theirs in zip(plain, timescale, strict=True):
        assert _plain(ours) == _plain(theirs)
