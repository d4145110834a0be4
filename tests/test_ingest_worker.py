"""Ingest on the real broker and database: valid batches land once, everything else is a dead letter."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.contract import GPS_SCHEMA, RFID_SCHEMA, batch, iso_ms, topic
from common.settings import Settings
from ingest.validate import Rejected, parse
from ingest.worker import IngestWorker
from tests.brokers import Mosquitto
from tests.helpers import wait_for

NOW = datetime.now(UTC)


def rfid_event(seq: int, epc: str = "3074257BF7194E4000001A85", **over: object) -> dict:
    return {"seq": seq, "epc": epc, "read_point": "wh-sh1/door-03", "reader": "door-03", "antenna": 1,
            "rssi_dbm": -55.5, "reads": 12, "first_seen": iso_ms(NOW - timedelta(seconds=2)),
            "last_seen": iso_ms(NOW), "direction": "out", **over}


def gps_event(seq: int, **over: object) -> dict:
    return {"seq": seq, "vehicle": "TRK-042", "ts": iso_ms(NOW + timedelta(milliseconds=seq)), "lat": 31.23,
            "lon": 121.47, "speed_kmh": 42.0, "course_deg": 90.0, "hdop": 0.9, "sats": 9, "quality": 1,
            "alt_m": 12.0, **over}


class Publisher:
    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.connect(host, int(port))
        self.client.loop_start()

    def send(self, topic_name: str, payload: bytes) -> None:
        self.client.publish(topic_name, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def worker_settings(db_url: str, mqtt_url: str) -> Settings:
    # A group of its own: workers of other tests on the shared broker do not take this test's messages.
    unique = uuid.uuid4().hex[:8]
    return Settings(database_url=db_url, mqtt_url=mqtt_url, ingest_client_id=f"ingest-{unique}",
                    ingest_shared_group=f"g{unique}", ingest_batch_seconds=0.05)


@contextmanager
def running(settings: Settings) -> Iterator[IngestWorker]:
    worker = IngestWorker(settings)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    assert worker.subscribed.wait(10)
    try:
        yield worker
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


@pytest.fixture
def ingest(db_url: str, mqtt_url: str) -> Iterator[IngestWorker]:
    with running(worker_settings(db_url, mqtt_url)) as worker:
        yield worker


def count(db_url: str, table: str) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def dead_letters(db_url: str, gateway_id: str) -> list[tuple[str, bytes, str]]:
    """(topic, payload, reason) of one gateway's dead letters, oldest first. The shared broker also
    hands every new subscriber the retained states of other tests' gateways (some with bad times)."""
    with psycopg.connect(db_url) as conn:
        return [(t, bytes(p), r) for t, p, r in conn.execute(
            "SELECT topic, payload, reason FROM dead_letters WHERE topic LIKE %s ORDER BY id",
            (f"cargotrace/v1/{gateway_id}/%",))]


def test_valid_batches_land_once_even_when_redelivered(ingest: IngestWorker, db_url: str, mqtt_url: str,
                                                       gateway_id: str) -> None:
    pub = Publisher(mqtt_url)
    rfid = batch(RFID_SCHEMA, gateway_id, [rfid_event(1), rfid_event(2, epc="596F596F")])
    gps = batch(GPS_SCHEMA, gateway_id, [gps_event(3), gps_event(4)])
    pub.send(topic(gateway_id, "rfid"), rfid)
    pub.send(topic(gateway_id, "gps"), gps)
    wait_for(lambda: count(db_url, "tag_observations") == 2 and count(db_url, "positions") == 2)
    pub.send(topic(gateway_id, "rfid"), rfid)  # a replay: the broker redelivers, a gateway resends
    pub.send(topic(gateway_id, "gps"), gps)
    wait_for(lambda: ingest.counters["messages"] >= 4)
    pub.close()
    assert (count(db_url, "tag_observations"), count(db_url, "positions")) == (2, 2)
    with psycopg.connect(db_url) as conn:
        uris = dict(conn.execute("SELECT epc, epc_uri FROM tag_observations").fetchall())
    assert uris == {"3074257BF7194E4000001A85": "urn:epc:id:sgtin:0614141.812345.6789", "596F596F": None}


def test_malformed_messages_become_dead_letters_and_valid_ones_still_land(
        ingest: IngestWorker, db_url: str, mqtt_url: str, gateway_id: str) -> None:
    rfid_topic = topic(gateway_id, "rfid")
    bad = {
        "invalid json": (rfid_topic, b"{not json"),
        "wrong schema": (rfid_topic, batch(GPS_SCHEMA, gateway_id, [gps_event(1)])),
        "gateway mismatch": (rfid_topic, batch(RFID_SCHEMA, "someone-else", [rfid_event(1)])),
        "schema violation": (topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id, [gps_event(1, lat=91)])),
        "rssi": (rfid_topic, batch(RFID_SCHEMA, gateway_id, [rfid_event(1, rssi_dbm=40)])),
        "time out of range": (rfid_topic, batch(RFID_SCHEMA, gateway_id, [rfid_event(
            1, first_seen="1999-01-01T00:00:00.000Z", last_seen="1999-01-01T00:00:01.000Z")])),
        "oversized": (rfid_topic, b" " * 2_000_000),
        # Valid JSON to Python, but nothing PostgreSQL can store: these must not stall the stream.
        "unstorable text": (rfid_topic, batch(RFID_SCHEMA, gateway_id, [rfid_event(1, reader="door\x00")])),
        "nan": (topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id, [gps_event(1)]).replace(b"31.23", b"NaN")),
        "deep": (topic(gateway_id, "state"), b"[" * 100_000),
    }
    pub = Publisher(mqtt_url)
    for topic_name, payload in bad.values():
        pub.send(topic_name, payload)
    pub.send(rfid_topic, batch(RFID_SCHEMA, gateway_id, [rfid_event(7)]))
    wait_for(lambda: len(dead_letters(db_url, gateway_id)) == len(bad) and count(db_url, "tag_observations") == 1)
    pub.close()
    reasons = [r for _, _, r in dead_letters(db_url, gateway_id)]
    payloads = [p for _, p, _ in dead_letters(db_url, gateway_id)]
    for expected in ("invalid json", "wrong schema", "gateway mismatch", "schema violation", "oversized",
                     "time out of range", "unstorable text"):
        assert any(r.startswith(expected) for r in reasons), expected
    assert b"{not json" in payloads
    assert ingest.counters["rejected: invalid json"] == 3  # counted by reason


def test_messages_in_flight_across_a_reconnect_are_stored_once_and_acknowledged_once(
        db_url: str, gateway_id: str, tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()  # its own: no other test's messages in the counts
    settings = worker_settings(db_url, broker.url)
    pub = Publisher(broker.url)
    with psycopg.connect(db_url) as blocker, running(settings) as worker:
        blocker.execute("LOCK TABLE positions IN EXCLUSIVE MODE")  # held until commit: the batch waits
        for seq in (1, 2, 3):
            pub.send(topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id, [gps_event(seq)]))
        wait_for(lambda: blocker.execute("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                                         "WHERE NOT l.granted AND d.datname = current_database()").fetchone()[0],
                 what="the first batch to wait for the table")
        worker.subscribed.clear()
        worker.client.socket().shutdown(socket.SHUT_RDWR)  # the connection drops mid-batch
        assert worker.subscribed.wait(20)  # reconnected: the broker resends the three, unacknowledged
        blocker.commit()
        wait_for(lambda: worker.counters["messages"] >= 6, what="the first copies and the redelivered ones")
        assert worker.counters["redelivered after reconnect"] == 3  # first copies: written, not acknowledged
    assert count(db_url, "positions") == 3
    with running(settings) as again:  # the same session: anything unacknowledged would come first
        pub.send(topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id, [gps_event(4)]))
        wait_for(lambda: count(db_url, "positions") == 4)
        assert again.counters["messages"] == 1
    pub.close()
    broker.stop()


def test_commits_are_announced_to_listeners(ingest: IngestWorker, db_url: str, mqtt_url: str,
                                            gateway_id: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN cargotrace_events")
        pub = Publisher(mqtt_url)
        pub.send(topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id, [gps_event(1)]))
        note = next(listener.notifies(timeout=20, stop_after=1))
        pub.close()
    assert json.loads(note.payload)["vehicles"] == ["TRK-042"]


@settings(max_examples=300, deadline=None)
@given(payload=st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20).map(lambda v: json.dumps(v).encode())), kind=st.sampled_from(["rfid", "gps", "state", "x"]))
def test_arbitrary_payloads_are_rows_or_rejections_never_crashes(payload: bytes, kind: str) -> None:
    try:
        parse(f"cargotrace/v1/gw-1/{kind}", payload, 1_000_000)
    except Rejected as exc:
        assert exc.reason


@settings(max_examples=300, deadline=None)
@given(stamp=st.text(max_size=40), field=st.sampled_from(["first_seen", "last_seen"]))
def test_any_time_text_is_a_row_or_a_rejection(stamp: str, field: str) -> None:
    payload = batch(RFID_SCHEMA, "gw-1", [rfid_event(1, **{field: stamp})])
    try:
        parse("cargotrace/v1/gw-1/rfid", payload, 1_000_000)
    except Rejected as exc:
        assert exc.reason in ("schema violation", "bad time", "time out of range", "unstorable text")


@pytest.mark.parametrize(("kind", "event"), [
    ("gps", gps_event(1, sats=7.0)), ("gps", gps_event(1, quality=1.0)), ("gps", {**gps_event(1), "seq": 1.0}),
    ("rfid", rfid_event(1, antenna=1.0)), ("rfid", rfid_event(1, reads=12.0))])
def test_a_whole_number_float_where_the_contract_says_integer_is_a_dead_letter_and_the_stream_goes_on(
        ingest: IngestWorker, db_url: str, mqtt_url: str, gateway_id: str, kind: str, event: dict) -> None:
    """JSON Schema's `integer` accepts 7.0; the binary COPY does not. One such message used to stop ingest
    for good (redelivered to every restart)."""
    pub = Publisher(mqtt_url)
    schema = GPS_SCHEMA if kind == "gps" else RFID_SCHEMA
    pub.send(topic(gateway_id, kind), batch(schema, gateway_id, [event]))
    pub.send(topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id, [gps_event(2)]))
    wait_for(lambda: count(db_url, "positions") == 1 and len(dead_letters(db_url, gateway_id)) == 1, timeout=15)
    pub.close()
    ((_, _, reason),) = dead_letters(db_url, gateway_id)
    assert reason.startswith("schema violation: ") and "not an integer" in reason


def test_events_stamped_ahead_of_their_receipt_are_quarantined_one_by_one(ingest: IngestWorker, db_url: str,
                                                                          mqtt_url: str, gateway_id: str) -> None:
    """A receiver's bad fix or a gateway's fast clock must not become the vehicle's latest state or a
    shipment's time: the event goes to the dead letters with its reason; the rest of the batch lands."""
    now = datetime.now(UTC)
    fixes = [gps_event(1, ts=iso_ms(now)), gps_event(2, ts=iso_ms(now + timedelta(hours=20))),
             gps_event(3, ts=iso_ms(now + timedelta(seconds=1)))]
    reads = [rfid_event(4, first_seen=iso_ms(now + timedelta(days=3)), last_seen=iso_ms(now + timedelta(days=3))),
             rfid_event(5)]
    pub = Publisher(mqtt_url)
    pub.send(topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id, fixes))
    pub.send(topic(gateway_id, "rfid"), batch(RFID_SCHEMA, gateway_id, reads))
    wait_for(lambda: count(db_url, "positions") == 2 and count(db_url, "tag_observations") == 1
             and len(dead_letters(db_url, gateway_id)) == 2)
    pub.close()
    with psycopg.connect(db_url) as conn:
        assert [s for (s,) in conn.execute("SELECT seq FROM positions ORDER BY seq")] == [1, 3]
    letters = dead_letters(db_url, gateway_id)
    assert [json.loads(p)["seq"] for _, p, _ in letters] == [2, 4]
    assert all(reason.startswith("time ahead: ") for _, _, reason in letters)
    assert ingest.counters["quarantined: time ahead"] >= 2


def test_a_key_stored_before_with_other_content_is_a_dead_letter_and_a_replay_is_silent(
        ingest: IngestWorker, db_url: str, mqtt_url: str, gateway_id: str) -> None:
    """The same (gateway, seq, ts) with other content (even another vehicle) used to vanish without a
    trace: first wins, and now the second says so. The same content again is a redelivery: nothing."""
    first = gps_event(1)
    pub = Publisher(mqtt_url)
    pub.send(topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id, [first]))
    wait_for(lambda: count(db_url, "positions") == 1)
    pub.send(topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id, [first]))  # a replay
    pub.send(topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id, [{**first, "vehicle": "TRK-999"}, gps_event(2)]))
    wait_for(lambda: count(db_url, "positions") == 2 and len(dead_letters(db_url, gateway_id)) == 1)
    pub.close()
    ((letter_topic, payload, reason),) = dead_letters(db_url, gateway_id)
    assert letter_topic == topic(gateway_id, "gps") and json.loads(payload)["vehicle_id"] == "TRK-999"
    assert reason.startswith("conflicting duplicate: seq 1 at ")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT vehicle_id FROM positions WHERE seq = 1").fetchone() == ("TRK-042",)
    assert ingest.counters["rejected: conflicting duplicate"] == 1


def test_a_bad_retained_message_is_one_dead_letter_however_often_ingest_restarts(
        db_url: str, mqtt_url: str, gateway_id: str) -> None:
    """A retained message comes again with every new subscription (1 row used to become 4)."""
    settings = Settings(database_url=db_url, mqtt_url=mqtt_url, ingest_client_id=f"ingest-{gateway_id}",
                        ingest_batch_seconds=0.05)  # a plain subscription: retained messages come to it
    pub = Publisher(mqtt_url)
    state = topic(gateway_id, "state")
    pub.client.publish(state, b'{"schema": "cargotrace.state/1", "broken', qos=1, retain=True).wait_for_publish(10)
    try:
        for restart in range(3):
            with running(settings) as worker:
                wait_for(lambda worker=worker: worker.counters["rejected: invalid json"] >= 1, what="the retained one")
                wait_for(lambda worker=worker: worker.counters["messages"] >= 1, what="its dead letter written")
            assert len(dead_letters(db_url, gateway_id)) == 1, restart
    finally:
        pub.client.publish(state, b"", qos=1, retain=True).wait_for_publish(10)
        pub.close()
