"""Live updates over SSE from real commits, share links, and the dispatcher's exception workflow."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.settings import Settings
from crm_link.correlate import process_pending
from tests.api_world import World
from tests.helpers import ApiServer, SseReader
from tracking_api import share
from tracking_api.app import create_app


@pytest.fixture
def server(world: World) -> Iterator[ApiServer]:
    with ApiServer(create_app(Settings(database_url=world.db_url))) as running:
        yield running


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    # The fuzz tests here refuse far more tokens than a client may (tests/test_api_limits.py tests the limit).
    with TestClient(create_app(Settings(database_url=world.db_url, api_auth_failures_per_minute=0))) as c:
        yield c


def load_out(world: World, customer: str, seq: int) -> None:
    """The shipment's only item is read out at the origin door and correlated: it is loaded."""
    with psycopg.connect(world.db_url) as conn:
        conn.execute("INSERT INTO tag_observations (gateway_id, seq, ts, epc, epc_uri, read_point, reader, antenna, "
                     "reads, first_seen, direction) VALUES ('dock', %s, now(), 'AA', %s, 'wh-sh1/door-03', 'r', 1, 3, "
                     "now(), 'out')", (seq, world.epc[customer]))
        conn.commit()
        process_pending(conn)


def test_a_status_change_reaches_the_shipments_stream_and_the_dispatcher_stream(world: World,
                                                                                 server: ApiServer) -> None:
    acme = SseReader(f"{server.url}/v1/shipments/SO-A1/stream", world.headers("acme"))
    dispatcher = SseReader(f"{server.url}/v1/stream", world.headers("dispatcher"))
    globex = SseReader(f"{server.url}/v1/shipments/SO-G1/stream", world.headers("globex"))
    try:
        assert (acme.status, dispatcher.status, globex.status) == (200, 200, 200)
        assert acme.next("status")[1]["status"] == "pending"  # the current state comes first
        assert globex.next("status")[1]["external_ref"] == "SO-G1"
        assert server.app.state.live.listening.wait(10)
        load_out(world, "acme", 1)
        _, shipment = acme.next("status")
        assert (shipment["external_ref"], shipment["status"], shipment["items"]["loaded"]) == ("SO-A1", "loaded", 1)
        _, seen = dispatcher.next("status")
        assert (seen["customer_id"], seen["status"]) == ("acme", "loaded")
        load_out(world, "globex", 2)
        assert globex.next("status")[1]["status"] == "loaded"
        assert globex.events.empty()  # acme's change never reached globex's stream
        assert acme.events.empty()
    finally:
        for reader in (acme, dispatcher, globex):
            reader.close()


def test_exceptions_and_positions_stream_to_the_dispatcher_and_customers_see_only_theirs(
        world: World, server: ApiServer) -> None:
    dispatcher = SseReader(f"{server.url}/v1/stream", world.headers("dispatcher"))
    acme = SseReader(f"{server.url}/v1/shipments/SO-A1/stream", world.headers("acme"))
    try:
        acme.next("status")
        assert server.app.state.live.listening.wait(10)
        with psycopg.connect(world.db_url) as conn:
            conn.execute("UPDATE demands SET status = 'in_transit' WHERE external_ref = 'SO-A1'")
            conn.execute("SELECT pg_notify('cargotrace_status', id::text) FROM demands WHERE external_ref = 'SO-A1'")
            conn.commit()
            assert acme.next("status")[1]["status"] == "in_transit"
            conn.execute("INSERT INTO exceptions (demand_id, vehicle_id, type, opened_at, evidence) SELECT id, "
                         "'TRK-A', 'off_route', now(), '{\"metres\": 900}' FROM demands WHERE external_ref = 'SO-A1'")
            conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon) "
                         "VALUES ('gw-TRK-A', 2, now(), 'TRK-A', 31.26, 121.51)")
            conn.execute("SELECT pg_notify('cargotrace_events', '{}')")
            conn.commit()
        _, exception = dispatcher.next("exception")
        assert (exception["type"], exception["evidence"], exception["external_ref"]) == ("off_route", {"metres": 900},
                                                                                       "SO-A1")
        _, position = dispatcher.next("position")
        assert (position["vehicle_id"], position["lat"]) == ("TRK-A", 31.26)
        _, mine = acme.next("position")  # the truck carries acme's shipment now: acme follows it
        assert mine["lat"] == 31.26
        with psycopg.connect(world.db_url) as conn:  # a customer-visible exception: kind and state, no evidence
            conn.execute("UPDATE exceptions SET state = 'acknowledged' WHERE id = %s", (world.exception_ids["acme"],))
        _, late = acme.next("exception")
        assert late == {"external_ref": "SO-A1", "type": "late", "state": "acknowledged",
                        "opened_at": late["opened_at"], "type_text": "预计延误", "state_text": "已确认"}
    finally:
        dispatcher.close()
        acme.close()


def test_a_share_link_opens_one_shipment_read_only_until_it_expires(world: World, client: TestClient) -> None:
    created = world.call(client, "POST", "/v1/shipments/SO-A1/share", "acme")
    assert created.status_code == 201
    token = created.json()["token"]
    assert created.json()["url"].endswith(f"/s/{token}")
    shared = client.get(f"/v1/shared/{token}")
    assert (shared.status_code, shared.json()["external_ref"]) == (200, "SO-A1")
    assert client.get(f"/v1/shared/{token}/trail").json() == {"positions": []}  # not departed yet
    assert client.put(f"/v1/shared/{token}").status_code == 405
    assert world.call(client, "POST", "/v1/shipments/SO-G1/share", "acme").status_code == 404
    with psycopg.connect(world.db_url) as conn:
        expired, _ = share.sign(conn, "acme", "SO-A1", timedelta(seconds=-1))
    assert client.get(f"/v1/shared/{expired}").status_code == 410
    claims, mac = token.split(".")
    forged = share._b64(share._unb64(claims).replace(b"SO-A1", b"SO-G1")) + "." + mac
    assert client.get(f"/v1/shared/{forged}").status_code == 404


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expiry=st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=5), st.none()))
def test_a_validly_signed_token_with_any_expiry_is_answered_not_a_500(world: World, client: TestClient,
                                                                       expiry: object) -> None:
    """Only the holder of the signing key can make these; an absurd expiry (year 300 000) was a 500."""
    with psycopg.connect(world.db_url) as conn:
        secret = share._secret(conn)
    claims = share._b64(json.dumps({"c": "acme", "r": "SO-A1", "e": expiry}).encode())
    token = f"{claims}.{share._b64(hmac.new(secret, claims.encode(), hashlib.sha256).digest())}"
    assert client.get(f"/v1/shared/{token}").status_code in (200, 404, 410)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-", max_size=80))
def test_arbitrary_share_tokens_are_refused_cleanly(client: TestClient, token: str) -> None:
    assert client.get(f"/v1/shared/{token}").status_code in (404, 422)


def test_the_dispatcher_acknowledges_then_resolves_an_exception_with_notes(world: World, client: TestClient) -> None:
    exception_id = world.exception_ids["globex"]
    listed = world.call(client, "GET", "/v1/exceptions?state=open&type=late&customer_id=globex", "dispatcher").json()
    assert [(e["id"], e["external_ref"], e["evidence"]) for e in listed["exceptions"]] == [
        (exception_id, "SO-G1", {"eta": "tomorrow"})]
    ack = world.call(client, "POST", f"/v1/exceptions/{exception_id}/acknowledge", "dispatcher",
                     json={"note": "driver called"})
    assert (ack.status_code, ack.json()["state"], ack.json()["note"]) == (200, "acknowledged", "driver called")
    assert world.call(client, "POST", f"/v1/exceptions/{exception_id}/acknowledge", "dispatcher").status_code == 409
    done = world.call(client, "POST", f"/v1/exceptions/{exception_id}/resolve", "dispatcher", json={"note": "fixed"})
    assert (done.json()["state"], done.json()["note"], done.json()["resolved_at"] is not None) == (
        "resolved", "fixed", True)
    assert world.call(client, "POST", f"/v1/exceptions/{exception_id}/resolve", "dispatcher").status_code == 409
    assert world.call(client, "GET", "/v1/exceptions?state=open", "dispatcher").json()["exceptions"][0]["id"] == \
        world.exception_ids["acme"]
    page = world.call(client, "GET", "/v1/exceptions?limit=1", "dispatcher").json()
    rest = world.call(client, "GET", f"/v1/exceptions?after={page['next_after']}", "dispatcher").json()
    assert len(page["exceptions"]) + len(rest["exceptions"]) == 2 and rest["next_after"] is None


def test_vehicles_and_a_downsampled_position_range(world: World, client: TestClient) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with psycopg.connect(world.db_url) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon) VALUES "
                        "('gw-TRK-A', %s, %s, 'TRK-A', %s, 121.5)",
                        [(10 + i, start + timedelta(seconds=10 * i), 31.0 + i / 10000) for i in range(1000)])
    vehicles = world.call(client, "GET", "/v1/vehicles", "dispatcher").json()["vehicles"]
    assert [(v["id"], [t["external_ref"] for t in v["trips"]]) for v in vehicles] == [("TRK-A", ["SO-A1"]),
                                                                                      ("TRK-G", ["SO-G1"])]
    assert vehicles[0]["trips"][0]["planned_route"]["type"] == "LineString"
    window = {"from": start.isoformat(), "to": (start + timedelta(seconds=10_000)).isoformat()}
    full = world.call(client, "GET", "/v1/vehicles/TRK-A/positions", "dispatcher", params=window).json()["positions"]
    assert len(full) == 1000
    thin = world.call(client, "GET", "/v1/vehicles/TRK-A/positions", "dispatcher",
                      params={**window, "max_points": 100}).json()["positions"]
    assert 90 <= len(thin) <= 100 and thin == sorted(thin, key=lambda p: p["ts"])
    assert thin[-1]["lat"] == full[-1]["lat"]  # each slice keeps its newest fix
    backwards = {"from": window["to"], "to": window["from"]}
    assert world.call(client, "GET", "/v1/vehicles/TRK-A/positions", "dispatcher",
                      params=backwards).status_code == 422


def test_feedback_on_own_shipments_only_with_smuggled_fields_ignored(world: World, client: TestClient) -> None:
    body = {"kind": "damage", "text": "two cartons crushed", "customer_id": "globex", "status": "delivered"}
    created = world.call(client, "POST", "/v1/shipments/SO-A1/feedback", "acme", json=body)
    assert (created.status_code, created.json()["kind"]) == (201, "damage")
    assert world.call(client, "POST", "/v1/shipments/SO-G1/feedback", "acme", json=body).status_code == 404
    rating = world.call(client, "POST", "/v1/shipments/SO-A1/feedback", "acme", json={"kind": "rating", "rating": 4})
    assert rating.status_code == 201
    for bad in ({"kind": "rating"}, {"kind": "rating", "rating": 6}, {"kind": "complaint"},
                {"kind": "praise", "text": "x"}, {"kind": "inquiry", "text": "x" * 4001}):
        assert world.call(client, "POST", "/v1/shipments/SO-A1/feedback", "acme", json=bad).status_code == 422
    with psycopg.connect(world.db_url) as conn:
        rows = conn.execute("SELECT f.customer_id, d.external_ref, f.kind, f.rating FROM feedback f "
                            "JOIN demands d ON d.id = f.demand_id ORDER BY f.id").fetchall()
    assert rows == [("acme", "SO-A1", "damage", None), ("acme", "SO-A1", "rating", 4)]


def test_a_burst_beyond_the_pool_is_queued_not_deadlocked(world: World) -> None:
    import asyncio

    import httpx

    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            calls = [client.get("/v1/shipments/SO-A1", headers=world.headers("acme")) for _ in range(80)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    # Two connections, a thread pool of 40: each request takes a connection twice (key, then query).
    with ApiServer(create_app(Settings(database_url=world.db_url, api_pool_size=2,
                                       api_rate_limit_per_minute=0))) as server:
        assert asyncio.run(burst(server.url)) == [200] * 80


def test_a_dispatcher_puts_a_vehicle_at_a_dock_door(world: World, client: TestClient) -> None:
    body = {"vehicle_id": "TRK-A", "valid_to": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}
    made = world.call(client, "PUT", "/v1/docks/wh-sh1/door-03/assignment", "dispatcher", json=body)
    assert made.status_code == 201 and made.json()["vehicle_id"] == "TRK-A"
    assert world.call(client, "PUT", "/v1/docks/wh-sh1/door-03/assignment", "acme", json=body).status_code == 403
    assert world.call(client, "PUT", "/v1/docks/wh-sh1/door-99/assignment", "dispatcher", json=body).status_code == 404
    unknown = world.call(client, "PUT", "/v1/docks/wh-sh1/door-03/assignment", "dispatcher",
                         json={"vehicle_id": "TRK-NOPE"})
    assert unknown.status_code == 422
    with psycopg.connect(world.db_url) as conn:
        assert conn.execute("SELECT vehicle_id, assigned_by FROM dock_assignments").fetchall() == [
            ("TRK-A", "key:" + world.keys["dispatcher"].split("_")[1])]
