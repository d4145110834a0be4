"""`cargotrace crm import`: CSV and JSON lines into the real database, bad rows alone refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_link.bulk_import import CSV_COLUMNS, import_file
from crm_link.directory import upsert_customer, upsert_site, upsert_vehicle
from crm_link.identifiers import uri_problem

HEADER = ",".join(CSV_COLUMNS)
GOOD = [
    "acme,SO-1,wh-sh1,dc-pd,,,,2026-03-01T08:00:00+08:00,2026-03-01T12:00:00+08:00,,,true,premium,TRK-1,,"
    "urn:epc:id:sgtin:0614141.812345.1 urn:epc:id:sgtin:0614141.812345.2",
    "acme,SO-2,wh-sh1,,31.3,121.5,500,,,,,false,,,,urn:epc:id:sscc:0614141.1234567890",
]


@pytest.fixture
def db(db_url: str) -> str:
    with psycopg.connect(db_url) as conn:
        upsert_customer(conn, "acme", "ACME Trading")
        upsert_site(conn, "wh-sh1", "Warehouse", 31.23, 121.47, doors=["door-03"])
        upsert_site(conn, "dc-pd", "Distribution centre", 31.30, 121.55)
        upsert_vehicle(conn, "TRK-1")
    return db_url


def counts(db_url: str) -> tuple[int, int, int]:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT (SELECT count(*) FROM demands), (SELECT count(*) FROM demand_items), "
                            "(SELECT count(*) FROM demand_history)").fetchone()


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher.cli", "crm", "import", *args], text=True,
                          capture_output=True, env={**os.environ, "CARGOTRACE_DATABASE_URL": db_url}, timeout=120)


def test_csv_with_a_bad_row_commits_the_good_ones_and_fails(db: str, tmp_path: Path) -> None:
    bad = "acme,SO-3,no-such-site,dc-pd,,,,,,,,,,,,urn:epc:id:sgtin:0614141.812345.3"
    invalid = "acme,SO-4,wh-sh1,dc-pd,,,,,,,,maybe,,,,urn:epc:id:sgtin:0614141.812345.4"
    f = tmp_path / "demands.csv"
    f.write_text("\n".join([HEADER, GOOD[0], bad, invalid, GOOD[1]]) + "\n")
    r = run(db, str(f))
    assert r.returncode == 1, r.stderr
    assert "line 3: reference: unknown site: no-such-site" in r.stderr
    assert "line 4: rush:" in r.stderr
    assert "created 2, updated or unchanged 0, refused 2" in r.stderr
    assert "Traceback" not in r.stderr
    assert counts(db) == (2, 3, 0)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT rush, service_level, vehicle_id FROM demands WHERE external_ref = 'SO-1'"
                            ).fetchone() == (True, "premium", "TRK-1")


def test_an_epc_uri_without_its_serial_is_refused_by_line_and_field(db: str, tmp_path: Path) -> None:
    """Such an item could never be read: no tag carries an SGTIN without a serial."""
    f = tmp_path / "demands.csv"
    f.write_text("\n".join([HEADER, "acme,SO-5,wh-sh1,dc-pd,,,,,,,,,,,,urn:epc:id:sgtin:0614141.812345",
                             "acme,SO-6,wh-sh1,dc-pd,,,,,,,,,,,,urn:epc:id:sgtin:0614141.81234.1"]) + "\n")
    r = run(db, str(f))
    assert r.returncode == 1
    assert ("line 2: items.0.epc_uri: a sgtin URI is "
            "urn:epc:id:sgtin:CompanyPrefix.IndicatorAndItemReference.Serial\n") in r.stderr
    assert ("line 3: items.0.epc_uri: a sgtin URI's company prefix and reference have 13 digits "
            "together\n") in r.stderr
    assert counts(db) == (0, 0, 0)


def test_reimport_changes_nothing(db: str, tmp_path: Path) -> None:
    f = tmp_path / "demands.csv"
    f.write_text("\n".join([HEADER, *GOOD]) + "\n")
    assert run(db, str(f)).returncode == 0
    first = counts(db)
    r = run(db, str(f))
    assert r.returncode == 0 and "created 0, updated or unchanged 2, refused 0" in r.stderr
    assert counts(db) == first == (2, 3, 0)


def test_jsonl_with_customer_option(db: str, tmp_path: Path) -> None:
    record = {"external_ref": "SO-9", "origin_site_id": "wh-sh1", "destination": {"site_id": "dc-pd"},
              "items": [{"gtin": "00614141123452", "serial": "7", "company_prefix_length": 7}]}
    f = tmp_path / "demands.jsonl"
    f.write_text(json.dumps(record) + "\n\n" + json.dumps({**record, "customer_id": "globex"}) + "\n[1]\n")
    with psycopg.connect(db) as conn:
        report = import_file(conn, f, "jsonl", "acme")
    assert report.created == 1
    assert [(e.line, e.field) for e in report.errors] == [(3, "customer_id"), (4, "line")]
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT epc_uri FROM demand_items").fetchall() == [("urn:epc:id:sgtin:0614141.012345.7",)]


def test_an_update_is_one_history_row(db: str, tmp_path: Path) -> None:
    f = tmp_path / "demands.csv"
    f.write_text("\n".join([HEADER, GOOD[0]]) + "\n")
    assert run(db, str(f)).returncode == 0
    f.write_text("\n".join([HEADER, GOOD[0].replace("premium", "economy")]) + "\n")
    assert run(db, str(f)).returncode == 0
    assert counts(db) == (1, 2, 1)


def test_unknown_header_imports_nothing(db: str, tmp_path: Path) -> None:
    f = tmp_path / "demands.csv"
    f.write_text(HEADER + ",colour\n" + GOOD[0] + ",red\n")
    r = run(db, str(f))
    assert r.returncode == 1 and "line 1: header: unknown columns: colour" in r.stderr
    assert counts(db) == (0, 0, 0)


_cell = st.one_of(st.text(max_size=30), st.sampled_from(["wh-sh1", "acme", "", "urn:epc:id:sgtin:0614141.812345.9",
                                                          "2026-03-01T08:00:00Z", "nan", "-1", "\x00", "\"", ","]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(_cell, min_size=0, max_size=len(CSV_COLUMNS) + 2), max_size=5),
       garbage=st.binary(max_size=40), fmt=st.sampled_from(["csv", "jsonl"]))
def test_malformed_rows_are_reported_never_raised(db: str, tmp_path: Path, rows: list[list[str]], garbage: bytes,
                                                  fmt: str) -> None:
    f = tmp_path / f"fuzz.{fmt}"
    if fmt == "csv":
        body = "\n".join([HEADER, GOOD[1], *(",".join(r) for r in rows)]).encode("utf-8", "surrogatepass")
    else:
        body = "\n".join([json.dumps({"external_ref": "SO-2", "origin_site_id": "wh-sh1",
                                      "destination": {"site_id": "dc-pd"},
                                      "items": [{"epc_uri": "urn:epc:id:sscc:0614141.1234567890"}]}),
                          *(json.dumps(dict(zip(CSV_COLUMNS, r, strict=False))) for r in rows)]).encode(
            "utf-8", "surrogatepass")
    f.write_bytes(body + b"\n" + garbage + b"\n")
    with psycopg.connect(db) as conn:
        report = import_file(conn, f, fmt, "acme")
    assert report.created + report.updated_or_unchanged >= 1  # the good first record always lands
    assert all(e.line >= 1 and e.field and e.reason for e in report.errors)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM demands WHERE external_ref = 'SO-2'").fetchone()[0] == 1


def test_every_pure_identity_uri_of_the_gs1_vectors_is_well_formed(corpora: Path) -> None:
    """The URI check refuses no identity a real tag carries (the standard's own vectors, every scheme)."""
    uris = [line.split("\t")[1] for name in ("tds96.tsv", "tds_standard_examples.tsv")
            for line in (corpora / "epc" / name).read_text().splitlines()
            if line.count("\t") and line.split("\t")[1].startswith("urn:epc:id:")]
    assert len(uris) > 60
    assert [u for u in uris if uri_problem(u) and u.split(":")[3] in ("sgtin", "sscc", "sgln", "grai", "giai",
                                                                         "gid")] == []
