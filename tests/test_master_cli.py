"""`cargotrace customers|sites|vehicles|gateways …` and `cargotrace import master`, run as a real
subprocess against a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from common.settings import Settings
from tests.api_world import World
from tracking_api.app import create_app

ROOT = Path(__file__).resolve().parent.parent


def cargotrace(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "CARGOTRACE_DATABASE_URL": db_url}, timeout=60)


def counts(db_url: str) -> tuple[int, ...]:
    with psycopg.connect(db_url) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("customers", "sites", "read_points", "vehicles", "gateways"))


def test_add_list_show_remove(db_url: str) -> None:
    added = cargotrace(db_url, "sites", "add", "wh-sh2", "--name", "Warehouse 2", "--doors", "door-01,door-02",
                       "--geofence", '{"lat": 31.2, "lon": 121.4, "radius_m": 200}', "--time-zone", "Asia/Urumqi")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["doors"] == ["door-01", "door-02"] and "created" in added.stderr
    gateway = cargotrace(db_url, "gateways", "add", "dock-wh-sh2", "--kind", "dock", "--site-id", "wh-sh2",
                         "--read-points", "wh-sh2/door-01 wh-sh2/door-02")
    assert gateway.returncode == 0, gateway.stderr
    listed = cargotrace(db_url, "sites", "list")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == ["wh-sh2"]
    assert json.loads(cargotrace(db_url, "sites", "show", "wh-sh2").stdout)["time_zone"] == "Asia/Urumqi"
    refused = cargotrace(db_url, "sites", "remove", "wh-sh2")
    assert refused.returncode == 1 and "gateways: dock-wh-sh2" in refused.stderr
    assert cargotrace(db_url, "gateways", "remove", "dock-wh-sh2").returncode == 0
    assert cargotrace(db_url, "sites", "remove", "wh-sh2").returncode == 0
    missing = cargotrace(db_url, "sites", "show", "wh-sh2")
    assert missing.returncode == 1 and "no site 'wh-sh2'" in missing.stderr


def test_add_names_the_option_in_error_and_stores_nothing(db_url: str) -> None:
    bad = cargotrace(db_url, "vehicles", "add", "TRK-9", "--telematics-id", "12ab", "--tag-epc-uri", "nope")
    assert bad.returncode == 2
    assert "--telematics-id" in bad.stderr and "--tag-epc-uri" in bad.stderr
    unknown = cargotrace(db_url, "gateways", "add", "gw-9", "--kind", "vehicle", "--vehicle-id", "TRK-9")
    assert unknown.returncode == 1 and "vehicle_id: unknown vehicle 'TRK-9'" in unknown.stderr
    assert counts(db_url) == (0, 0, 0, 0, 0)


def test_list_pages_by_id(db_url: str) -> None:
    for n in range(3):
        assert cargotrace(db_url, "customers", "add", f"c{n}", "--name", f"C{n}").returncode == 0
    first = cargotrace(db_url, "customers", "list", "--limit", "2")
    assert [json.loads(line)["id"] for line in first.stdout.splitlines()] == ["c0", "c1"]
    assert "--after c1" in first.stderr
    rest = cargotrace(db_url, "customers", "list", "--after", "c1")
    assert [json.loads(line)["id"] for line in rest.stdout.splitlines()] == ["c2"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# A gateway before the site it reads at: rows are written customers, sites, vehicles, gateways.
CSV = ("resource,id,name,kind,geofence,doors,site_id,read_points,plate,telematics_id,language\n"
       "gateways,dock-lg,,dock,,,lg,lg/door-01 lg/door-02,,,\n"
       'sites,lg,Lingang,,"{""lat"": 30.9, ""lon"": 121.9}","door-01,door-02",,,,,\n'
       "vehicles,TRK-1,,,,,,,沪A00001,013912345678,\n"
       "customers,initech,Initech,,,,,,,,en\n")


def test_import_csv_in_any_order_and_again_is_a_no_op(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "master.csv", CSV)
    first = cargotrace(db_url, "import", "master", str(path))
    assert first.returncode == 0, first.stderr
    assert "created 4, changed 0, unchanged 0" in first.stderr and "records: 4" in first.stderr
    assert counts(db_url) == (1, 1, 2, 1, 1)
    again = cargotrace(db_url, "import", "master", str(path))
    assert again.returncode == 0 and "created 0, changed 0, unchanged 4" in again.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT language FROM customers").fetchone() == ("en",)
        assert conn.execute("SELECT read_points FROM gateways").fetchone() == (["lg/door-01", "lg/door-02"],)


def test_import_reports_bad_rows_by_line_and_field_and_imports_nothing(db_url: str, tmp_path: Path) -> None:
    rows = [{"resource": "customers", "id": "initech", "name": "Initech"},
            {"resource": "sites", "id": "lg", "name": "Lingang", "geofence": {"lat": 30.9, "lon": 121.9},
             "time_zone": "Asia/Nowhere"},
            {"resource": "trucks", "id": "TRK-1"},
            {"resource": "vehicles", "id": "TRK 1"},
            {"resource": "vehicles", "id": "TRK-2", "colour": "red"},
            {"resource": "gateways", "id": "gw-1", "kind": "dock", "site_id": "nowhere"}]
    path = write(tmp_path, "master.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n{not json\n"
                 + json.dumps(rows[0]) + "\n")
    result = cargotrace(db_url, "import", "master", str(path))
    assert result.returncode == 1
    for expected in ("line 2: time_zone:", "line 3: resource:", "line 4: id:", "line 5: colour:", "line 7: line:",
                     "line 8: id: initech is also on line 1"):
        assert expected in result.stderr, result.stderr
    assert "nothing imported" in result.stderr and counts(db_url) == (0, 0, 0, 0, 0)
    # Valid rows that fail against the database (an unknown site) are reported too, after the others pass.
    path = write(tmp_path, "master.jsonl", json.dumps(rows[0]) + "\n" + json.dumps(rows[-1]) + "\n")
    result = cargotrace(db_url, "import", "master", str(path))
    assert result.returncode == 1 and "line 2: site_id: unknown site 'nowhere'" in result.stderr
    assert counts(db_url) == (0, 0, 0, 0, 0)


def test_import_refuses_an_unknown_csv_column_for_the_whole_file(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "master.csv", "resource,id,name,colour\ncustomers,c1,C1,red\n")
    result = cargotrace(db_url, "import", "master", str(path))
    assert result.returncode == 1 and "line 1: header: unknown columns: colour" in result.stderr
    assert counts(db_url) == (0, 0, 0, 0, 0)


def test_the_api_serves_what_the_cli_imported(world: World, tmp_path: Path) -> None:
    assert cargotrace(world.db_url, "import", "master", str(write(tmp_path, "master.csv", CSV))).returncode == 0
    shown = json.loads(cargotrace(world.db_url, "sites", "show", "lg").stdout)
    with TestClient(create_app(Settings(database_url=world.db_url))) as client:
        assert world.call(client, "GET", "/v1/sites/lg", "dispatcher").json() == shown
        assert world.call(client, "GET", "/v1/gateways/dock-lg", "dispatcher").json()["site_id"] == "lg"
