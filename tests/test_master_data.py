"""Master data as resources: customers, sites, vehicles and gateways over HTTP, who may do what, and
that another customer's ids never answer with data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.settings import Settings
from tests.api_world import World
from tracking_api.app import create_app

SITE = {"name": "Lingang hub", "address": "上海市浦东新区", "geofence": {"lat": 30.9, "lon": 121.9, "radius_m": 250},
        "doors": ["door-01", "door-02"]}
POLYGON = {"type": "Polygon", "coordinates": [[[121.9, 30.9], [121.91, 30.9], [121.91, 30.91], [121.9, 30.9]]]}
BODIES = {
    "customers": {"name": "Initech", "service_level": "express", "contact": {"email": "ops@initech.cn"},
                  "language": "en", "exception_thresholds": {"late_grace_s": 600}},
    "sites": SITE,
    "vehicles": {"plate": "沪A12345", "carrier": "Own fleet", "tag_epc_uri": "urn:epc:id:giai:0614141.77",
                 "telematics_id": "013912345678", "gateway_id": "gw-trk-new"},
    "gateways": {"kind": "dock", "site_id": "wh-sh1", "read_points": ["wh-sh1/door-03"]},
}
# What exists in the world (tests/api_world.py), per kind: acme's and globex's own where there is one.
EXISTING = {"customers": "globex", "sites": "dc-pd", "vehicles": "TRK-G"}


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=world.db_url, api_rate_limit_per_minute=0))) as c:
        yield c


def call(world: World, client: TestClient, method: str, path: str, who: str | None, body: Any = None) -> Any:
    return world.call(client, method, path, who, **({"json": body} if body is not None else {}))


@pytest.mark.parametrize("kind", list(BODIES))
@pytest.mark.parametrize(("who", "write", "read"), [
    (None, 401, 401), ("acme", 403, 403), ("dispatcher", 403, 200), ("crm", 201, 200), ("admin", 201, 200)])
def test_admin_and_integration_write_staff_read(world: World, client: TestClient, kind: str, who: str | None,
                                                 write: int, read: int) -> None:
    new = f"new-{who}"
    assert call(world, client, "PUT", f"/v1/{kind}/{new}", who, BODIES[kind]).status_code == write
    listed = call(world, client, "GET", f"/v1/{kind}", who)
    one = call(world, client, "GET", f"/v1/{kind}/{new}", who)
    if kind == "customers" and who == "acme":  # a customer reads the customer list: only itself
        assert listed.status_code == 200 and [c["id"] for c in listed.json()["customers"]] == ["acme"]
        assert one.status_code == 404
    elif kind == "vehicles" and who == "crm":  # the fleet list (with trips, positions) is the dispatchers'
        assert (listed.status_code, one.status_code) == (403, 200)
    else:
        assert listed.status_code == read
        assert one.status_code == (200 if write == 201 else 404 if read == 200 else read)
    assert call(world, client, "DELETE", f"/v1/{kind}/{new}", who).status_code == (204 if write == 201 else write)


@pytest.mark.parametrize("kind", list(EXISTING))
def test_another_customers_ids_answer_no_data_on_any_endpoint(world: World, client: TestClient, kind: str) -> None:
    other = EXISTING[kind]
    before = call(world, client, "GET", f"/v1/{kind}/{other}", "admin").json()
    for method, body in (("GET", None), ("PUT", BODIES[kind]), ("DELETE", None)):
        answer = call(world, client, method, f"/v1/{kind}/{other}", "acme", body)
        assert answer.status_code in (403, 404), (method, answer.text)
        assert other not in answer.text
    listed = call(world, client, "GET", f"/v1/{kind}", "acme")
    assert listed.status_code in (200, 403) and other not in listed.text
    assert call(world, client, "GET", f"/v1/{kind}/{other}", "admin").json() == before  # and nothing changed


def test_a_customer_reads_its_own_record_and_the_gateway_list_is_staff_only(world: World, client: TestClient) -> None:
    own = call(world, client, "GET", "/v1/customers/acme", "acme").json()["basic"]
    assert own["id"] == "acme" and own["language"] == "zh-CN"
    assert call(world, client, "PUT", "/v1/gateways/gw-1", "admin", BODIES["gateways"]).status_code == 201
    assert call(world, client, "GET", "/v1/gateways/gw-1", "acme").status_code == 403
    assert call(world, client, "GET", "/v1/gateways", "acme").status_code == 403


@pytest.mark.parametrize("kind", list(BODIES))
def test_put_is_an_idempotent_upsert(world: World, client: TestClient, kind: str) -> None:
    first = call(world, client, "PUT", f"/v1/{kind}/x-1", "crm", BODIES[kind])
    again = call(world, client, "PUT", f"/v1/{kind}/x-1", "crm", BODIES[kind])
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json() and first.json()["id"] == "x-1"
    stored = call(world, client, "GET", f"/v1/{kind}/x-1", "admin").json()
    assert (stored["basic"] if kind == "customers" else stored).items() >= first.json().items()


def test_a_site_stores_its_doors_as_read_points_and_a_polygon_beside_its_circle(world: World,
                                                                                client: TestClient) -> None:
    site = call(world, client, "PUT", "/v1/sites/lg", "admin", {**SITE, "geofence": POLYGON}).json()
    assert site["geofence"] == POLYGON and site["time_zone"] == "Asia/Shanghai"
    assert site["doors"] == ["door-01", "door-02"]
    changed = call(world, client, "PUT", "/v1/sites/lg", "admin", {**SITE, "doors": ["door-02", "door-09"]})
    assert changed.status_code == 200 and changed.json()["geofence"] == SITE["geofence"]
    with psycopg.connect(world.db_url) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM read_points WHERE site_id = 'lg' ORDER BY id")] == [
            "lg/door-02", "lg/door-09"]
        conn.execute("UPDATE sites SET geofence_polygon = NULL WHERE id = 'lg'")
    with psycopg.connect(world.db_url) as conn:
        call(world, client, "PUT", "/v1/sites/lg", "admin", {**SITE, "geofence": POLYGON})
        lat, lon, radius = conn.execute("SELECT lat, lon, radius_m FROM sites WHERE id = 'lg'").fetchone()
    assert 30.9 < lat < 30.91 and 121.9 < lon < 121.91 and 500 < radius < 1500  # the circle around the polygon


@pytest.mark.parametrize(("kind", "body", "field"), [
    ("customers", {"service_level": "express"}, "name"),
    ("customers", {"name": "X", "language": "fr"}, "language"),
    ("customers", {"name": "X", "exception_thresholds": {"lateness": 5}}, "lateness"),
    ("customers", {"name": "X", "colour": "red"}, "colour"),
    ("sites", {**SITE, "time_zone": "Mars/Olympus"}, "time_zone"),
    ("sites", {**SITE, "geofence": {"lat": 91, "lon": 121, "radius_m": 100}}, "lat"),
    ("sites", {**SITE, "geofence": {**POLYGON, "coordinates": [[[121.9, 30.9], [121.91, 30.9], [121.91, 30.91],
                                                                 [121.92, 30.92]]]}}, "coordinates"),
    ("sites", {**SITE, "doors": ["door-01", "door-01"]}, "doors"),
    ("vehicles", {"tag_epc_uri": "urn:epc:id:sgtin:0614141.812345.1"}, "tag_epc_uri"),
    ("vehicles", {"telematics_id": "12ab"}, "telematics_id"),
    ("gateways", {"kind": "truck"}, "kind"),
    ("gateways", {"kind": "dock", "site_id": "nowhere"}, "site_id"),
    ("gateways", {"kind": "vehicle", "vehicle_id": "TRK-404"}, "vehicle_id"),
    ("gateways", {"kind": "dock", "site_id": "wh-sh1", "read_points": ["wh-sh1/door-99"]}, "read_points"),
])
def test_validation_errors_name_the_field(world: World, client: TestClient, kind: str, body: dict,
                                          field: str) -> None:
    answer = call(world, client, "PUT", f"/v1/{kind}/bad-1", "admin", body)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert any(field in [str(part) for part in e["loc"]] or field in e["msg"] for e in answer.json()["errors"]), \
        answer.json()
    assert call(world, client, "GET", f"/v1/{kind}", "admin").text.count("bad-1") == 0


def test_a_tag_or_device_another_vehicle_has_is_refused_by_name(world: World, client: TestClient) -> None:
    assert call(world, client, "PUT", "/v1/vehicles/T1", "admin", BODIES["vehicles"]).status_code == 201
    answer = call(world, client, "PUT", "/v1/vehicles/T2", "admin", {"telematics_id": "013912345678"})
    assert answer.status_code == 422 and answer.json()["errors"][0]["loc"] == ["body", "telematics_id"]
    assert "T1" in answer.json()["detail"]


@pytest.mark.parametrize(("path", "references"), [
    ("/v1/customers/acme", {"demands": ["SO-A1"]}),
    ("/v1/sites/wh-sh1", {"demands": ["acme/SO-A1", "globex/SO-G1"]}),
    ("/v1/vehicles/TRK-A", {"demands": ["acme/SO-A1"]}),
])
def test_deleting_what_is_still_referenced_is_a_conflict_naming_the_references(
        world: World, client: TestClient, path: str, references: dict[str, list[str]]) -> None:
    answer = call(world, client, "DELETE", path, "admin")
    assert answer.status_code == 409, answer.text
    assert references.items() <= answer.json()["references"].items()
    assert call(world, client, "GET", path, "admin").status_code == 200


def test_doors_with_observations_and_gateways_are_references_too(world: World, client: TestClient) -> None:
    with psycopg.connect(world.db_url) as conn:
        conn.execute("INSERT INTO tag_observations (gateway_id, seq, ts, epc, read_point, reader, antenna, reads, "
                     "first_seen) VALUES ('gw', 1, now(), 'AA', 'dc-pd/door-01', 'r', 1, 1, now())")
    answer = call(world, client, "PUT", "/v1/sites/dc-pd", "admin", {**SITE, "doors": []})
    assert answer.status_code == 409 and answer.json()["references"] == {"observations": ["dc-pd/door-01"]}
    call(world, client, "PUT", "/v1/sites/lone", "admin", SITE)
    call(world, client, "PUT", "/v1/gateways/gw-lone", "admin", {"kind": "dock", "site_id": "lone",
                                                                 "read_points": ["lone/door-01"]})
    answer = call(world, client, "DELETE", "/v1/sites/lone", "admin")
    assert answer.status_code == 409 and answer.json()["references"] == {"gateways": ["gw-lone"]}
    assert call(world, client, "DELETE", "/v1/gateways/gw-lone", "admin").status_code == 204
    assert call(world, client, "DELETE", "/v1/sites/lone", "admin").status_code == 204
    assert call(world, client, "DELETE", "/v1/sites/lone", "admin").status_code == 404


def test_lists_page_by_id_over_more_rows_than_a_page(world: World, client: TestClient) -> None:
    for n in range(7):
        assert call(world, client, "PUT", f"/v1/vehicles/V{n:02}", "crm", {"plate": f"沪A0000{n}"}).status_code == 201
    seen, after = [], ""
    while True:
        page = call(world, client, "GET", f"/v1/vehicles?limit=3&after={after}", "dispatcher").json()
        seen += [v["id"] for v in page["vehicles"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == sorted(seen) == sorted([f"V{n:02}" for n in range(7)] + ["TRK-A", "TRK-G"])
    assert len(seen) == len(set(seen))


SCALARS = st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers() | st.text(
    max_size=20)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                        max_size=5), max_leaves=12)
FIELDS = st.sampled_from(["name", "geofence", "doors", "kind", "site_id", "vehicle_id", "read_points", "lat",
                          "time_zone", "tag_epc_uri", "telematics_id", "language", "contact", "exception_thresholds",
                          "type", "coordinates"])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(list(BODIES)), body=JSON | st.dictionaries(FIELDS, JSON, max_size=6))
def test_no_json_body_makes_a_put_fail(world: World, client: TestClient, kind: str, body: Any) -> None:
    answer = call(world, client, "PUT", f"/v1/{kind}/fuzz", "admin", body)
    assert answer.status_code in (200, 201, 409, 422), answer.text
