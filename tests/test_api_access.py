"""The API on the real database: keys hashed, roles enforced, a customer sees only its own shipments."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.settings import Settings
from crm_link.correlate import process_pending
from crm_link.directory import upsert_customer, upsert_site, upsert_vehicle
from tests.api_world import World, build
from tracking_api.app import create_app
from tracking_api.keys import create_key, revoke_key

DEMAND = {"customer_id": "acme", "origin_site_id": "wh-sh1", "destination": {"site_id": "acme-pd"},
          "vehicle_id": "TRK-042", "items": [{"epc_uri": "urn:epc:id:sgtin:0614141.812345.1"}]}


@dataclass
class Api:
    client: TestClient
    keys: dict[str, str]
    db_url: str

    def call(self, method: str, path: str, key: str | None, **kw: object):
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return self.client.request(method, path, headers=headers, **kw)


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    with psycopg.connect(db_url) as conn:
        upsert_customer(conn, "acme", "ACME Trading")
        upsert_customer(conn, "globex", "Globex")
        upsert_site(conn, "wh-sh1", "Warehouse", 31.23, 121.47, doors=["door-03"])
        upsert_site(conn, "acme-pd", "ACME DC", 31.30, 121.55, doors=["door-01"])
        upsert_vehicle(conn, "TRK-042")
        keys = {"acme": create_key(conn, "customer", "acme"), "globex": create_key(conn, "customer", "globex"),
                "dispatcher": create_key(conn, "dispatcher"), "crm": create_key(conn, "integration"),
                "admin": create_key(conn, "admin")}
        conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon) "
                     "VALUES ('t', 1, now(), 'TRK-042', 31.25, 121.5)")
    with TestClient(create_app(Settings(database_url=db_url))) as client:
        api = Api(client, keys, db_url)
        assert api.call("PUT", "/v1/demands/SO-1", "crm", json=DEMAND).status_code == 201
        yield api


def test_keys_are_stored_hashed_and_revocation_takes_effect(api: Api) -> None:
    with psycopg.connect(api.db_url) as conn:
        stored = " ".join(str(v) for row in conn.execute("SELECT * FROM api_keys") for v in row)
        assert all(key.split("_", 2)[2] not in stored for key in api.keys.values())
        assert revoke_key(conn, api.keys["acme"].split("_")[1])
    assert api.call("GET", "/v1/shipments/SO-1", "acme").status_code == 401


def test_a_customer_sees_its_own_shipment(api: Api) -> None:
    response = api.call("GET", "/v1/shipments/SO-1", "acme")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["status_word"], body["items"]) == ("pending", "InfoReceived",
                                                                     {"total": 1, "loaded": 0, "delivered": 0})
    assert body["last_position"] is None  # the truck's position is shown only while it carries the shipment
    assert [s["external_ref"] for s in api.call("GET", "/v1/shipments", "acme").json()["shipments"]] == ["SO-1"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/shipments/SO-1"),
    ("GET", "/v1/shipments/SO-1?customer_id=acme"),
    ("GET", "/v1/shipments?customer_id=acme"),
])
def test_another_customer_gets_404_or_nothing_never_the_shipment(api: Api, method: str, path: str) -> None:
    response = api.call(method, path, "globex")
    if path.startswith("/v1/shipments?"):
        assert response.status_code == 200 and response.json()["shipments"] == []
    else:
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert "acme" not in response.text


def test_the_dispatcher_lists_every_customers_shipments_and_narrows_them_to_those_needing_attention(
        api: Api) -> None:
    assert api.call("PUT", "/v1/demands/GX-1", "crm", json={**DEMAND, "customer_id": "globex"}).status_code == 201
    assert api.call("PUT", "/v1/demands/SO-3", "crm", json={
        **DEMAND, "delivery_from": "2026-11-02T08:00:00Z", "delivery_to": "2026-11-02T10:00:00Z"}).status_code == 201
    with psycopg.connect(api.db_url) as conn:
        conn.execute("UPDATE demands SET status = 'in_transit', eta = '2026-11-02T11:00:00Z' "
                     "WHERE external_ref = 'SO-3'")
        conn.execute("INSERT INTO exceptions (type, demand_id, vehicle_id, opened_at, evidence) "
                     "SELECT 'misload', id, 'TRK-042', now(), '{}' FROM demands WHERE external_ref = 'GX-1'")

    def listed(query: str, key: str = "dispatcher") -> list[tuple[str, str]]:
        response = api.call("GET", f"/v1/shipments{query}", key)
        assert response.status_code == 200, response.text
        return [(s["customer_id"], s["external_ref"]) for s in response.json()["shipments"]]

    assert listed("") == [("acme", "SO-1"), ("globex", "GX-1"), ("acme", "SO-3")]
    assert listed("?customer_id=globex") == [("globex", "GX-1")]
    assert listed("?attention=late") == [("acme", "SO-3")]  # its ETA is past the window
    assert listed("?attention=exception") == [("globex", "GX-1")]
    assert listed("?status=in_transit") == [("acme", "SO-3")]
    # a customer cannot widen its view: without or with another customer's id it sees only its own
    assert listed("", "acme") == [("acme", "SO-1"), ("acme", "SO-3")]
    assert listed("?customer_id=globex", "acme") == [("acme", "SO-1"), ("acme", "SO-3")]
    assert listed("?attention=exception", "acme") == []
    assert api.call("GET", "/v1/shipments?attention=soon", "dispatcher").status_code == 422


@pytest.mark.parametrize(("method", "path", "key", "expected"), [
    ("GET", "/v1/shipments/SO-1", None, 401),
    ("GET", "/v1/vehicles/TRK-042/position", None, 401),
    ("PUT", "/v1/demands/SO-2", None, 401),
    ("GET", "/v1/vehicles/TRK-042/position", "acme", 403),
    ("PUT", "/v1/demands/SO-2", "acme", 403),
    ("PUT", "/v1/demands/SO-2", "dispatcher", 403),
    ("GET", "/v1/shipments/SO-1", "crm", 403),
    ("GET", "/v1/vehicles/TRK-042/position", "dispatcher", 200),
    ("GET", "/v1/shipments/SO-1?customer_id=acme", "dispatcher", 200),
])
def test_roles(api: Api, method: str, path: str, key: str | None, expected: int) -> None:
    assert api.call(method, path, key, json=DEMAND).status_code == expected


def test_a_bad_key_is_401(api: Api) -> None:
    for bad in ("ct_deadbeef_nope", "nonsense", api.keys["acme"][:-2] + "xx"):
        assert api.client.get("/v1/shipments/SO-1", headers={"Authorization": f"Bearer {bad}"}).status_code == 401


def test_status_and_owner_smuggled_into_the_body_are_ignored(api: Api) -> None:
    body = {**DEMAND, "status": "delivered", "id": 999, "external_ref": "OTHER"}
    assert api.call("PUT", "/v1/demands/SO-1", "crm", json=body).status_code == 200
    shipment = api.call("GET", "/v1/shipments/SO-1", "acme").json()
    assert shipment["status"] == "pending" and shipment["external_ref"] == "SO-1"


def test_unknown_references_are_clear_errors(api: Api) -> None:
    response = api.call("PUT", "/v1/demands/SO-3", "crm", json={**DEMAND, "vehicle_id": "TRK-999"})
    assert response.status_code == 422 and "unknown vehicle" in response.json()["detail"]


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=3), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(json_values, st.fixed_dictionaries({k: json_values for k in DEMAND})))
def test_arbitrary_demand_bodies_are_rejected_cleanly_never_500(api: Api, body: object) -> None:
    response = api.call("PUT", "/v1/demands/SO-fuzz", "crm", json=body)
    assert response.status_code in (200, 201, 422), response.text


def test_health_reports_the_database(api: Api) -> None:
    body = api.client.get("/healthz").json()
    assert (body["status"], body["database"]) == ("ok", "ok") and "broker" not in body  # no broker configured


def test_health_is_503_problem_when_the_database_is_unreachable() -> None:
    with socket.socket() as probe:  # a port that was just free: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = Settings(database_url=f"postgresql://postgres@127.0.0.1:{port}/cargotrace?connect_timeout=1")
    with TestClient(create_app(down)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503 and response.headers["content-type"] == "application/problem+json"


def test_a_shipment_shows_its_timeline_progress_and_open_exceptions(api: Api) -> None:
    with psycopg.connect(api.db_url) as conn:
        conn.execute("INSERT INTO tag_observations (gateway_id, seq, ts, epc, epc_uri, read_point, reader, antenna, "
                     "reads, first_seen, direction) VALUES ('dock', 1, now(), 'AA', %s, 'wh-sh1/door-03', 'r', 1, 3, "
                     "now(), 'out')", (DEMAND["items"][0]["epc_uri"],))
        conn.commit()
        process_pending(conn)
        conn.execute("INSERT INTO exceptions (demand_id, vehicle_id, type, opened_at) "
                     "SELECT id, vehicle_id, 'late', now() FROM demands WHERE external_ref = 'SO-1'")
    body = api.call("GET", "/v1/shipments/SO-1", "acme").json()
    assert (body["status"], body["status_word"]) == ("loaded", "InfoReceived")
    assert [e["status"] for e in body["timeline"]] == ["loading", "loaded"]
    assert body["items"] == {"total": 1, "loaded": 1, "delivered": 0}
    assert [e["type"] for e in body["exceptions"]] == ["late"]
    loaded = api.call("GET", "/v1/shipments?status=loaded", "acme").json()["shipments"]
    assert [s["external_ref"] for s in loaded] == ["SO-1"]
    assert api.call("GET", "/v1/shipments?status=pending", "acme").json()["shipments"] == []


def test_a_shipment_brings_its_own_two_places_and_the_plate_for_the_map(api: Api) -> None:
    yard = {"type": "Polygon", "coordinates": [[[121.549, 31.299], [121.552, 31.299], [121.552, 31.302],
                                                 [121.549, 31.299]]]}
    for site, record in (("acme-pd", {"name": "ACME DC", "geofence": yard}),
                         ("globex-dc", {"name": "Globex DC", "geofence": {"lat": 31.1, "lon": 121.3}})):
        assert api.call("PUT", f"/v1/sites/{site}", "admin", json=record).status_code in (200, 201)
    assert api.call("PUT", "/v1/vehicles/TRK-042", "admin", json={"plate": "沪A12345"}).status_code == 200
    body = api.call("GET", "/v1/shipments/SO-1", "acme").json()
    assert body["origin"] == {"site_id": "wh-sh1", "name": "Warehouse",
                              "geofence": {"lat": 31.23, "lon": 121.47, "radius_m": 300.0}}
    assert body["destination"] == {"site_id": "acme-pd", "name": "ACME DC", "geofence": yard}
    assert body["vehicle_plate"] == "沪A12345"
    assert "Globex DC" not in api.call("GET", "/v1/shipments/SO-1", "acme").text  # only the shipment's own sites

    # a point of the demand's own: the circle arrival is judged by, the default radius when it gives none
    own = {**DEMAND, "destination": {"lat": 31.4, "lon": 121.6}}
    assert api.call("PUT", "/v1/demands/SO-2", "crm", json=own).status_code == 201
    body = api.call("GET", "/v1/shipments/SO-2", "acme").json()
    assert body["destination"] == {"site_id": None, "name": None,
                                   "geofence": {"lat": 31.4, "lon": 121.6, "radius_m": 300.0}}


def test_a_changed_record_is_200_and_its_history_is_kept(api: Api) -> None:
    assert api.call("PUT", "/v1/demands/SO-1", "crm", json=DEMAND).status_code == 200
    assert api.call("PUT", "/v1/demands/SO-1", "crm", json={**DEMAND, "rush": True}).status_code == 200
    with psycopg.connect(api.db_url) as conn:
        assert [r[0] for r in conn.execute("SELECT changes FROM demand_history")] == [{"rush": {"from": False,
                                                                                                  "to": True}}]


def test_a_vehicle_without_fixes_is_404(api: Api) -> None:
    assert api.call("GET", "/v1/vehicles/TRK-999/position", "dispatcher").status_code == 404
    assert api.call("GET", "/v1/vehicles/TRK-042/position", "admin").json()["lat"] == 31.25


def test_an_expired_key_is_401(api: Api) -> None:
    with psycopg.connect(api.db_url) as conn:
        conn.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE prefix = %s",
                     (api.keys["dispatcher"].split("_")[1],))
    assert api.call("GET", "/v1/vehicles/TRK-042/position", "dispatcher").status_code == 401
    assert api.call("GET", "/v1/vehicles/TRK-042/position", "admin").status_code == 200


def test_a_revoked_key_stops_working_once_its_cached_verification_ends(db_url: str) -> None:
    world = build(db_url)
    key = world.keys["acme"]
    for cache_s, after_revocation in ((3600.0, 200), (0.0, 401)):
        with TestClient(create_app(Settings(database_url=db_url, api_key_cache_seconds=cache_s))) as client:
            assert world.call(client, "GET", "/v1/shipments/SO-A1", "acme").status_code == 200
            with psycopg.connect(db_url) as conn:
                conn.execute("UPDATE api_keys SET revoked_at = now() WHERE prefix = %s", (key.split("_")[1],))
            assert world.call(client, "GET", "/v1/shipments/SO-A1", "acme").status_code == after_revocation
            with psycopg.connect(db_url) as conn:
                conn.execute("UPDATE api_keys SET revoked_at = NULL")
        with TestClient(create_app(Settings(database_url=db_url, api_key_cache_seconds=cache_s))) as fresh:
            assert world.call(fresh, "GET", "/v1/shipments/SO-A1", "acme").status_code == 200


def test_keys_create_for_an_unknown_customer_says_so_in_one_line(world: World) -> None:
    run = subprocess.run([sys.executable, "-m", "launcher.cli", "keys", "create", "--role", "customer",
                          "--customer", "nobody"], capture_output=True, text=True,
                         env={**os.environ, "CARGOTRACE_DATABASE_URL": world.db_url})
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr.strip() == "error: no customer 'nobody': create the customer first"


def test_a_shipment_in_transit_shows_its_eta_with_the_band_and_how_it_was_made(api: Api) -> None:
    with psycopg.connect(api.db_url) as conn:
        conn.execute("INSERT INTO tag_observations (gateway_id, seq, ts, epc, epc_uri, read_point, reader, antenna, "
                     "reads, first_seen, direction) VALUES ('dock', 1, now(), 'AA', %s, 'wh-sh1/door-03', 'r', 1, 3, "
                     "now(), 'out')", (DEMAND["items"][0]["epc_uri"],))
        conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                     "VALUES ('t', 2, now() + interval '1 minute', 'TRK-042', 31.26, 121.50, 40)")
        conn.commit()
        process_pending(conn)
    detail = api.call("GET", "/v1/shipments/SO-1", "acme").json()
    listed = api.call("GET", "/v1/shipments", "acme").json()["shipments"][0]
    trip = api.call("GET", "/v1/vehicles", "dispatcher").json()["vehicles"][0]["trips"][0]
    for body in (detail, listed, trip):
        assert body["status"] == "in_transit" and body["eta_method"] == "speed"  # no history yet: today's method
        assert body["eta_p10"] < body["eta"] < body["eta_p90"]
