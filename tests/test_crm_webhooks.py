"""Outbound webhooks against a real local receiver that verifies Standard Webhooks signatures."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from common.settings import Settings
from crm_link import outbox, webhooks
from crm_link.webhooks import UnsafeURL, check_url, retry_after
from storage.vocabulary import CUSTOMER_VISIBLE_EXCEPTIONS, EXCEPTION_TYPES, WEBHOOK_EVENTS
from tests.api_world import World, build
from tests.helpers import wait_for
from tracking_api.app import create_app

FAST = (0.05, 0.05, 0.05, 0.05, 0.05)
STRICT = Settings()


class Receiver:
    """An HTTP endpoint answering with queued status codes (then 200), recording every request."""

    def __init__(self, port: int = 0) -> None:
        self.answers: deque[tuple[int, dict[str, str]]] = deque()
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                status, headers = receiver.answers.popleft() if receiver.answers else (200, {})
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b, status in self.requests if 200 <= status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(db_url: str) -> World:
    return build(db_url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=world.db_url, webhook_allow_private=True))) as c:
        yield c


@pytest.fixture
def workers(world: World) -> Iterator[None]:
    """Two delivery workers, as in a deployment with several."""
    stop = threading.Event()
    settings = Settings(database_url=world.db_url, webhook_allow_private=True, webhook_poll_seconds=0.05)
    threads = [threading.Thread(target=outbox.run, args=(settings, stop, FAST)) for _ in range(2)]
    for t in threads:
        t.start()
    yield
    stop.set()
    for t in threads:
        t.join()


def subscribe(world: World, client: TestClient, url: str, who: str = "acme", **extra: Any) -> dict[str, Any]:
    body = {"url": url, "event_types": ["shipment.status_changed", "exception.opened", "exception.resolved",
                                        "shipment.eta_changed"], **extra}
    r = world.call(client, "POST", "/v1/webhooks", who, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def demand_id(world: World, ref: str) -> int:
    with psycopg.connect(world.db_url) as conn:
        return conn.execute("SELECT id FROM demands WHERE external_ref = %s", (ref,)).fetchone()[0]


def status_change(world: World, ref: str, status: str) -> None:
    with psycopg.connect(world.db_url) as conn:
        conn.execute("INSERT INTO shipment_events (demand_id, status, ts, biz_step) VALUES (%s, %s, now(), 'loading')",
                     (demand_id(world, ref), status))


def states(world: World) -> list[str]:
    with psycopg.connect(world.db_url) as conn:
        return [r[0] for r in conn.execute("SELECT state FROM webhook_deliveries ORDER BY id")]


def test_status_change_is_delivered_once_and_signed(world: World, client: TestClient, receiver: Receiver,
                                                    workers: None) -> None:
    sub = subscribe(world, client, receiver.url)
    assert sub["secret"].startswith("whsec_")
    assert "secret" not in world.call(client, "GET", "/v1/webhooks", "acme").json()["webhooks"][0]
    status_change(world, "SO-A1", "loading")
    status_change(world, "SO-G1", "loading")  # globex's: not for acme's subscription
    wait_for(lambda: states(world) == ["delivered"], what="the delivery")
    [(headers, body)] = receiver.delivered()
    event = Webhook(sub["secret"]).verify(body, headers)
    assert event["type"] == "shipment.status_changed"
    assert event["data"]["external_ref"] == "SO-A1" and event["data"]["status"] == "loading"
    assert headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        Webhook(sub["secret"]).verify(body.replace(b"loading", b"arrived"), headers)


def test_receiver_down_then_up_gets_everything_once(world: World, client: TestClient, workers: None) -> None:
    with socket.socket() as s:  # a port nobody listens on, yet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sub = subscribe(world, client, f"http://127.0.0.1:{port}/hook")
    for status in ("loading", "loaded", "in_transit"):
        status_change(world, "SO-A1", status)
    with psycopg.connect(world.db_url) as conn:
        exc_id = world.exception_ids["acme"]
        conn.execute("UPDATE exceptions SET state = 'resolved', resolved_at = now() WHERE id = %s", (exc_id,))

    def refused() -> bool:
        with psycopg.connect(world.db_url) as conn:
            return conn.execute("SELECT count(*) FROM webhook_deliveries WHERE attempts >= 1 "
                                "AND last_error IS NOT NULL").fetchone()[0] == 4
    wait_for(refused, what="failed attempts while the receiver is down")
    receiver = Receiver(port)
    try:
        receiver.answers.extend([(503, {"Retry-After": "0"})] * 3)
        wait_for(lambda: states(world) == ["delivered"] * 4, what="every delivery")
        ids = [h["webhook-id"] for h, _ in receiver.delivered()]
        assert len(ids) == 4 and len(set(ids)) == 4
        kinds = sorted(Webhook(sub["secret"]).verify(b, h)["type"] for h, b in receiver.delivered())
        assert kinds == ["exception.resolved"] + ["shipment.status_changed"] * 3
        assert sum(1 for *_, status in receiver.requests if status == 503) == 3
    finally:
        receiver.close()


def test_gone_disables_the_subscription(world: World, client: TestClient, receiver: Receiver,
                                        workers: None) -> None:
    subscribe(world, client, receiver.url)
    receiver.answers.append((410, {}))
    status_change(world, "SO-A1", "loading")
    wait_for(lambda: states(world) == ["dead"], what="the dead delivery")
    [sub] = world.call(client, "GET", "/v1/webhooks", "acme").json()["webhooks"]
    assert sub["active"] is False and sub["disabled_reason"] == "410 Gone"
    status_change(world, "SO-A1", "loaded")
    assert states(world) == ["dead"]  # a disabled subscription queues nothing


def test_retry_after_and_dead_after_the_schedule(world: World, client: TestClient, receiver: Receiver) -> None:
    subscribe(world, client, receiver.url)
    status_change(world, "SO-A1", "loading")
    settings = Settings(database_url=world.db_url, webhook_allow_private=True)
    sender = outbox.Sender(settings, delays=(0.0,))
    receiver.answers.extend([(503, {"Retry-After": "7200"}), (500, {})])
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        assert sender.send_due(conn) == 1
        wait_s = conn.execute("SELECT extract(epoch FROM next_attempt_at - now()) FROM webhook_deliveries").fetchone()
        assert 7000 < wait_s[0] <= 7200  # honoured, not the schedule's 0 s
        assert sender.send_due(conn) == 0
        conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
        assert sender.send_due(conn) == 1  # the second failure exhausts a one-retry schedule
    sender.close()
    assert states(world) == ["dead"]


def test_resend_and_tenancy(world: World, client: TestClient, receiver: Receiver, workers: None) -> None:
    sub = subscribe(world, client, receiver.url)
    status_change(world, "SO-A1", "loading")
    wait_for(lambda: states(world) == ["delivered"], what="the delivery")
    [delivery] = world.call(client, "GET", "/v1/webhooks/deliveries?state=delivered", "acme").json()["deliveries"]
    assert world.call(client, "GET", "/v1/webhooks/deliveries?state=dead", "acme").json()["deliveries"] == []
    assert world.call(client, "GET", "/v1/webhooks/deliveries", "globex").json()["deliveries"] == []
    assert world.call(client, "GET", "/v1/webhooks", "globex").json()["webhooks"] == []
    path = f"/v1/webhooks/deliveries/{delivery['id']}/resend"
    assert world.call(client, "POST", path, "globex").status_code == 404
    assert world.call(client, "DELETE", f"/v1/webhooks/{sub['id']}", "globex").status_code == 404
    assert world.call(client, "POST", path, "acme").status_code == 202
    wait_for(lambda: len(receiver.delivered()) == 2, what="the resent delivery")
    assert {h["webhook-id"] for h, _ in receiver.delivered()} == {delivery["webhook_id"]}
    assert world.call(client, "DELETE", f"/v1/webhooks/{sub['id']}", "acme").status_code == 204
    assert world.call(client, "GET", "/v1/webhooks", "acme").json()["webhooks"] == []


def test_staff_subscribe_for_a_customer(world: World, client: TestClient, receiver: Receiver) -> None:
    assert world.call(client, "POST", "/v1/webhooks", "crm", json={
        "url": receiver.url, "event_types": ["exception.opened"]}).status_code == 422  # which customer?
    sub = subscribe(world, client, receiver.url, "crm", customer_id="globex")
    assert sub["customer_id"] == "globex"
    assert world.call(client, "POST", "/v1/webhooks", "dispatcher", json={
        "url": receiver.url, "event_types": ["exception.opened"]}).status_code == 403
    assert world.call(client, "POST", "/v1/webhooks", "acme", json={
        "url": receiver.url, "event_types": ["no.such_event"]}).status_code == 422


def test_eta_moves_beyond_the_threshold_only(world: World, client: TestClient, receiver: Receiver) -> None:
    subscribe(world, client, receiver.url, eta_threshold_s=900)
    with psycopg.connect(world.db_url) as conn:
        for moved in ("1 hour", "1 hour 1 minute", "3 hours"):  # first ETA, +60 s, +2 h
            conn.execute("UPDATE demands SET eta = now() + %s::interval WHERE external_ref = 'SO-A1'", (moved,))
            conn.commit()
        events = conn.execute("SELECT payload->'data'->>'previous_eta' IS NULL FROM webhook_deliveries "
                              "WHERE event_type = 'shipment.eta_changed' ORDER BY id").fetchall()
    assert events == [(True,), (False,)]


def test_change_rolled_back_queues_nothing(world: World, client: TestClient, receiver: Receiver) -> None:
    subscribe(world, client, receiver.url)
    with psycopg.connect(world.db_url) as conn:
        conn.execute("INSERT INTO shipment_events (demand_id, status, ts) VALUES (%s, 'loading', now())",
                     (demand_id(world, "SO-A1"),))
        conn.rollback()
    assert states(world) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "http://10.1.2.3/", "http://[::1]/", "http://localhost/",
                                 "https://169.254.169.254/latest", "http://[::ffff:192.168.1.1]/", "ftp://example.com/",
                                 "http:///nohost", "http://user:pw@8.8.8.8/",
                                 # IPv6 forms that carry a private IPv4 address: compatible, NAT64, 6to4, Teredo
                                 "http://[::127.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://[64:ff9b::a9fe:a9fe]/",
                                 "http://[2002:7f00:1::]/", "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",
                                 "http://[64:ff9b:1::1]/"])
def test_ssrf_refused_at_subscription(world: World, url: str) -> None:
    with TestClient(create_app(Settings(database_url=world.db_url))) as strict:
        r = world.call(strict, "POST", "/v1/webhooks", "acme", json={"url": url, "event_types": ["exception.opened"]},
                       params={"lang": "en"})
    assert r.status_code == 422 and "url refused" in r.text


def test_ssrf_refused_at_send_time(world: World, client: TestClient, receiver: Receiver) -> None:
    subscribe(world, client, receiver.url)  # allowed when subscribing, no longer when sending
    status_change(world, "SO-A1", "loading")
    sender = outbox.Sender(Settings(database_url=world.db_url), delays=(60.0,))
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        assert sender.send_due(conn) == 1
        error = conn.execute("SELECT last_error FROM webhook_deliveries").fetchone()[0]
    sender.close()
    assert "non-public address 127.0.0.1" in error and receiver.requests == []


def test_public_ipv6_forms_of_public_addresses_pass() -> None:
    for url in ("http://[64:ff9b::808:808]/", "http://[2002:808:808::1]/", "http://[::ffff:8.8.8.8]/"):
        check_url(url, STRICT)


def test_allowed_networks() -> None:
    check_url("http://10.1.2.3/", Settings(webhook_allowed_networks=["10.0.0.0/8"]))
    with pytest.raises(UnsafeURL):
        check_url("http://10.1.2.3/", Settings(webhook_allowed_networks=["192.168.0.0/16"]))
    with pytest.raises(ValueError):  # a typo fails at start, not at the first send
        Settings(webhook_allowed_networks=["10.0.0.0/33"])


@given(st.ip_addresses(), st.integers(1, 65535), st.text(max_size=20))
def test_ip_literals_pass_only_when_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int,
                                            path: str) -> None:
    host = f"[{address}]" if address.version == 6 else str(address)
    url = f"https://{host}:{port}/{path.replace('#', '').replace('?', '')}"
    if all(a.is_global for a in webhooks.reached(address)):
        check_url(url, STRICT)
    else:
        with pytest.raises(UnsafeURL):
            check_url(url, STRICT)


@given(st.text(max_size=60).filter(lambda s: not s.lower().startswith(("http://", "https://"))))
def test_any_other_text_is_refused(text: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(text, STRICT)


@given(st.one_of(st.none(), st.text(max_size=40), st.integers(0, 10**9).map(str)))
def test_retry_after_never_raises(value: str | None) -> None:
    seconds = retry_after(value, webhooks.datetime.now(webhooks.UTC))
    assert seconds is None or seconds >= 0


def test_resolved_through_the_api_queues_under_row_level_security(world: World, client: TestClient,
                                                                   receiver: Receiver) -> None:
    subscribe(world, client, receiver.url)
    r = world.call(client, "POST", f"/v1/exceptions/{world.exception_ids['acme']}/resolve", "dispatcher", json={})
    assert r.status_code == 200, r.text
    with psycopg.connect(world.db_url) as conn:
        assert conn.execute("SELECT event_type, payload->'data'->>'state' FROM webhook_deliveries").fetchall() == [
            ("exception.resolved", "resolved")]


def _open_and_resolve_every_kind(world: World, ref: str) -> None:
    with psycopg.connect(world.db_url) as conn:
        conn.execute("UPDATE exceptions SET state = 'resolved', resolved_at = now()")  # the world's own `late`
        for kind in EXCEPTION_TYPES:
            (x,) = conn.execute("INSERT INTO exceptions (demand_id, vehicle_id, type, opened_at, evidence, note) "
                                "VALUES (%s, 'TRK-A', %s, now(), '{\"lat\": 31.2, \"position_id\": 7}', 'call him') "
                                "RETURNING id", (demand_id(world, ref), kind)).fetchone()
            if kind != "late":  # one of each kind stays open, for the API to show
                conn.execute("UPDATE exceptions SET state = 'resolved', resolved_at = now() WHERE id = %s", (x,))


@pytest.mark.parametrize("event", WEBHOOK_EVENTS)
def test_a_customer_subscription_gets_what_the_api_shows_the_customer(world: World, client: TestClient,
                                                                       event: str) -> None:
    """Every event type, in the tenancy tests' style: a customer's subscription carries exactly the
    exceptions and fields the shipment endpoint shows it (no dispatcher-only kinds, no evidence or
    notes), in what is sent and in what GET /v1/webhooks/deliveries lists."""
    subscribe(world, client, "http://127.0.0.1:9/hook", event_types=[event])
    status_change(world, "SO-A1", "loading")
    with psycopg.connect(world.db_url) as conn:
        conn.execute("UPDATE demands SET eta = now() + interval '3 hours' WHERE external_ref = 'SO-A1'")
    _open_and_resolve_every_kind(world, "SO-A1")
    listed = world.call(client, "GET", "/v1/webhooks/deliveries", "acme").json()["deliveries"]
    with psycopg.connect(world.db_url) as conn:
        stored = [r[0] for r in conn.execute("SELECT payload FROM webhook_deliveries ORDER BY id")]
    assert [d["payload"] for d in listed] == stored and stored
    shown = world.call(client, "GET", "/v1/shipments/SO-A1", "acme").json()
    # the machine fields: the texts for people beside them (type_text, state_text) are the API's own
    shown["exceptions"] = [{k: v for k, v in x.items() if not k.endswith("_text")} for x in shown["exceptions"]]
    for payload in stored:
        data = payload["data"]
        assert "evidence" not in data and "note" not in data and "exception_id" not in data
        if event.startswith("exception."):
            assert data["type"] in CUSTOMER_VISIBLE_EXCEPTIONS
            assert set(data) == {"external_ref", *shown["exceptions"][0]}
    if event == "exception.opened":
        assert sorted(p["data"]["type"] for p in stored) == sorted(CUSTOMER_VISIBLE_EXCEPTIONS)
        assert [_instants({k: v for k, v in p["data"].items() if k != "external_ref"}) for p in stored
                if p["data"]["type"] == "late" and p["data"]["state"] == "open"][-1:] == [
            _instants(x) for x in shown["exceptions"]]


def _instants(data: dict[str, Any]) -> dict[str, Any]:
    """Times as instants: PostgreSQL's JSON drops trailing zeros of the microseconds, Python keeps them."""
    return {k: datetime.fromisoformat(v) if k.endswith("_at") and v else v for k, v in data.items()}


def test_a_staff_subscription_gets_every_kind_with_its_evidence(world: World, client: TestClient) -> None:
    subscribe(world, client, "http://127.0.0.1:9/hook", who="crm", customer_id="acme", audience="staff",
              event_types=["exception.opened"])
    _open_and_resolve_every_kind(world, "SO-A1")
    deliveries = world.call(client, "GET", "/v1/webhooks/deliveries", "crm").json()["deliveries"]
    assert sorted(d["payload"]["data"]["type"] for d in deliveries) == sorted(EXCEPTION_TYPES)
    assert all(d["payload"]["data"]["evidence"]["position_id"] == 7 for d in deliveries)


def test_a_customer_cannot_subscribe_for_the_staff_view(world: World, client: TestClient) -> None:
    r = world.call(client, "POST", "/v1/webhooks", "acme", json={
        "url": "http://127.0.0.1:9/hook", "event_types": ["exception.opened"], "audience": "staff"})
    assert r.status_code == 403
