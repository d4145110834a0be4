"""/metrics and /healthz of the ingest worker, the CRM worker and the API, scraped over HTTP from the
running services on the real broker and database."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from common.contract import RFID_SCHEMA, batch, topic
from common.settings import Settings
from crm_link import worker as crm_worker
from crm_link.demands import upsert_demand
from ingest.worker import IngestWorker
from launcher.embedded import free_port
from tests.api_world import build
from tests.brokers import Mosquitto
from tests.helpers import ApiServer, SseReader, wait_for
from tests.test_crm_status import ITEMS, T0, demand, observe, world
from tests.test_ingest_worker import Publisher, rfid_event
from tracking_api.app import create_app

Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]
_LINE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')


def scrape(base: str) -> Metrics:
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    out: Metrics = {}
    for line in response.text.splitlines():
        name, labels, value = _LINE.match(line).groups()
        out[name, frozenset(re.findall(r'(\w+)="([^"]*)"', labels or ""))] = float(value)
    return out


def metric(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


def health(base: str) -> int:
    return httpx.get(f"{base}/healthz", timeout=10).status_code


@contextmanager
def running_ingest(settings: Settings) -> Iterator[str]:
    port = free_port()
    worker = IngestWorker(settings.model_copy(update={"ingest_metrics_listen": f"127.0.0.1:{port}"}))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        assert worker.subscribed.wait(10)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def test_ingest_counts_what_it_stored_and_rejected_and_is_healthy(db_url: str, tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()  # a broker of its own: other tests' messages would count too
    settings = Settings(database_url=db_url, mqtt_url=broker.url, ingest_client_id=f"ingest-{uuid.uuid4().hex[:8]}",
                        ingest_batch_seconds=0.05)
    publisher = Publisher(broker.url)
    try:
        with running_ingest(settings) as base:
            wait_for(lambda: health(base) == 200, what="ingest healthy")
            publisher.send(topic("gw-m", "rfid"), batch(RFID_SCHEMA, "gw-m", [
                rfid_event(1), rfid_event(2, epc="3074257BF7194E4000001A86")]))
            publisher.send(topic("gw-m", "rfid"), b"not json")
            metrics = wait_for(lambda: (m := scrape(base)) and metric(m, "cargotrace_ingest_messages_total") == 2
                               and m, what="both messages counted")
            assert metric(metrics, "cargotrace_ingest_observations_total") == 2
            rejected = {dict(labels)["reason"]: v for (name, labels), v in metrics.items()
                        if name == "cargotrace_ingest_rejected_total"}
            assert sum(rejected.values()) == 1, rejected
            assert metric(metrics, "cargotrace_ingest_database_errors_total") == 0
            assert metric(metrics, "cargotrace_ingest_lag_seconds") == 0  # nothing waits
            assert metric(metrics, "cargotrace_ingest_broker_connected") == 1
    finally:
        publisher.close()
        broker.stop()


def test_ingest_with_its_database_gone_reports_unhealthy_and_a_growing_lag(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/cargotrace"  # nothing listens there
    settings = Settings(database_url=nowhere, mqtt_url=broker.url, ingest_client_id=f"ingest-{uuid.uuid4().hex[:8]}",
                        ingest_batch_seconds=0.05)
    publisher = Publisher(broker.url)
    try:
        with running_ingest(settings) as base:
            publisher.send(topic("gw-m", "rfid"), batch(RFID_SCHEMA, "gw-m", [rfid_event(1)]))
            wait_for(lambda: health(base) == 503, what="ingest to report the database down")
            first = wait_for(lambda: metric(scrape(base), "cargotrace_ingest_lag_seconds"), what="a lag")
            wait_for(lambda: metric(scrape(base), "cargotrace_ingest_lag_seconds") > first, what="the lag to grow")
            metrics = scrape(base)
            assert metric(metrics, "cargotrace_ingest_database_errors_total") >= 1
            assert metric(metrics, "cargotrace_ingest_messages_total") == 0  # not stored, not acknowledged
    finally:
        publisher.close()
        broker.stop()


def test_the_crm_worker_reports_cursor_lag_processed_events_and_the_pipeline_s_state(db_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with world(db_url) as conn:
        upsert_demand(conn, "acme", "SO-M1", demand())
        conn.execute("INSERT INTO dead_letters (topic, payload, reason) VALUES ('cargotrace/v1/x/rfid', 'x', 'json')")
        for gateway, seq, state in (("gw-a", 1, "online"), ("gw-a", 2, "offline"), ("gw-b", 1, "online")):
            conn.execute("INSERT INTO gateway_states (gateway_id, seq, ts, state, payload) "
                         "VALUES (%s, %s, now() + %s * interval '1 s', %s, '{}')", (gateway, seq, seq, state))
        conn.commit()
        stop = threading.Event()
        # Wakes only on ingest's NOTIFY: a row committed without one waits, and shows as lag.
        service = threading.Thread(target=crm_worker.run, args=(
            Settings(database_url=db_url, crm_poll_seconds=3600, crm_metrics_listen=f"127.0.0.1:{port}"), stop))
        service.start()
        try:
            wait_for(lambda: health(base) == 200, what="the CRM worker healthy")
            observe(conn, ITEMS[0], "wh-sh1/door-03", "out", T0)
            lag = wait_for(lambda: metric(scrape(base), "cargotrace_crm_cursor_lag_seconds", source="tag_observations"),
                           what="the unconsumed observation as lag")
            assert lag > 0
            conn.execute("NOTIFY cargotrace_events")
            conn.commit()
            # The pass that consumed it is counted when the pass ends, its events when their transaction commits.
            metrics = wait_for(lambda: (m := scrape(base)) and metric(
                m, "cargotrace_crm_events_total", kind="observation") == 1
                and metric(m, "cargotrace_crm_transitions_total") == 1 and m, what="the observation consumed")
        finally:
            stop.set()
            service.join(30)
    assert metric(metrics, "cargotrace_crm_cursor_lag_seconds", source="tag_observations") == 0
    assert metric(metrics, "cargotrace_dead_letters_total") == 1
    assert metric(metrics, "cargotrace_gateway_state", gateway="gw-a", state="offline") == 1
    assert metric(metrics, "cargotrace_gateway_state", gateway="gw-a", state="online") is None  # superseded
    assert metric(metrics, "cargotrace_gateway_state", gateway="gw-b", state="online") == 1
    assert metric(metrics, "cargotrace_crm_database_up") == 1
    assert not service.is_alive()


def test_the_api_counts_requests_by_route_template_and_status_with_a_latency_histogram(db_url: str) -> None:
    w = build(db_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with ApiServer(create_app(Settings(database_url=db_url, api_metrics_listen=f"127.0.0.1:{port}"))) as api:
        assert health(base) == 200
        for who, ref, expected in (("acme", "SO-A1", 200), ("acme", "SO-G1", 404), (None, "SO-A1", 401)):
            assert httpx.get(f"{api.url}/v1/shipments/{ref}", headers=w.headers(who)).status_code == expected
        assert httpx.get(f"{api.url}/metrics").status_code == 404  # not on the public port
        stream = SseReader(f"{api.url}/v1/stream", w.headers("dispatcher"))
        try:  # counted when the stream starts, not when it ends
            metrics = wait_for(lambda: (m := scrape(base)) and metric(
                m, "cargotrace_api_requests_total", method="GET", route="/v1/stream", status="200") and m,
                what="the open stream counted")
        finally:
            stream.close()
    route = {"method": "GET", "route": "/v1/shipments/{external_ref}"}
    for status in ("200", "404", "401"):
        assert metric(metrics, "cargotrace_api_requests_total", status=status, **route) == 1
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in metrics.items()
                     if name == "cargotrace_api_request_duration_seconds_bucket" and dict(labels)["route"] ==
                     route["route"])
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == 3 and buckets[-1][0] == float("inf")
    assert metric(metrics, "cargotrace_api_request_duration_seconds_count", **route) == 3
    assert metric(metrics, "cargotrace_api_request_duration_seconds_sum", **route) > 0
    assert not any("SO-A1" in dict(labels).get("route", "") for _, labels in metrics)
