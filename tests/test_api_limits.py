"""What a client cannot make the API carry: bodies beyond the size limit, bodies trickled in to hold
the API's slots, and guessed keys without end."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from common.settings import Settings
from tests.api_world import World
from tests.helpers import ApiServer
from tracking_api.app import create_app

POOL = 5
LIMITS = {"api_pool_size": POOL, "api_max_body_bytes": 100_000, "api_body_timeout_s": 1.0,
          "api_auth_failures_per_minute": 10}
DEMAND = {"customer_id": "acme", "origin_site_id": "wh-sh1", "destination": {"site_id": "dc-pd"},
          "items": [{"epc_uri": "urn:epc:id:sgtin:0614141.812345.77"}]}


@pytest.fixture
def server(world: World) -> Iterator[ApiServer]:
    with ApiServer(create_app(Settings(database_url=world.db_url, **LIMITS))) as running:
        yield running


def demands(world: World) -> int:
    with psycopg.connect(world.db_url) as conn:
        return conn.execute("SELECT count(*) FROM demands").fetchone()[0]


def test_a_body_over_the_limit_is_refused_and_nothing_is_stored(world: World, server: ApiServer) -> None:
    before = demands(world)
    padded = json.dumps({**DEMAND, "note": "x" * 5_000_000}).encode()  # a valid body and an unknown field
    r = httpx.put(f"{server.url}/v1/demands/SO-BIG", content=padded, headers=world.headers("crm"))
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    # The same without a Content-Length (chunked): refused when the limit is passed, not at the end.
    r = httpx.put(f"{server.url}/v1/demands/SO-BIG", content=iter([padded[i:i + 65536]
                                                                    for i in range(0, len(padded), 65536)]),
                  headers=world.headers("crm"))
    assert r.status_code == 413
    assert demands(world) == before
    ok = httpx.put(f"{server.url}/v1/demands/SO-SMALL", json=DEMAND, headers=world.headers("crm"))
    assert ok.status_code == 201


def test_bodies_trickled_in_hold_no_slot_and_end_in_408(world: World, server: ApiServer) -> None:
    """As many connections as the pool has, each sending a body a byte at a time without a key: the
    API still answers others, and each trickle ends with 408."""
    slow = []
    for _ in range(POOL):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000\r\n\r\n{")
        slow.append(s)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/shipments/SO-A1", headers=world.headers("acme")).status_code == 200
    for s in slow:
        s.settimeout(15)
        assert s.recv(64).startswith(b"HTTP/1.1 408 ")
        s.close()


def test_guessed_keys_are_limited_per_address(world: World, server: ApiServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v1/shipments/SO-A1", headers=world.headers("acme")).status_code == 200  # known now
        answers = [client.get("/v1/shipments/SO-A1", headers={"Authorization": f"Bearer ct_guess{n}_x"}).status_code
                   for n in range(LIMITS["api_auth_failures_per_minute"] + 3)]
        assert answers == [401] * LIMITS["api_auth_failures_per_minute"] + [429] * 3
        refused = client.get("/v1/shipments/SO-G1", headers=world.headers("globex"))
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        # a key this API verified a moment ago needs no lookup and is not held up
        assert client.get("/v1/shipments/SO-A1", headers=world.headers("acme")).status_code == 200
