"""Whatever validation accepts, the database stores; what the database still refuses becomes a dead
letter instead of a batch retried forever."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.contract import GPS_SCHEMA, RFID_SCHEMA, STATE_SCHEMA, batch, iso_ms, topic
from ingest.validate import Rejected, Rows, parse
from ingest.writer import Accepted, Batch, Writer
from tests.test_ingest_worker import NOW, gps_event, rfid_event

# Besides any character: exactly what PostgreSQL text and UTF-8 refuse.
NASTY_TEXT = st.text(st.one_of(st.characters(), st.sampled_from(["\x00", "\ud800", "\udfff"])), max_size=20)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | NASTY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NASTY_TEXT, inner, max_size=3), max_leaves=10)
SEQS = itertools.count(1)


@pytest.fixture
def writer(db_url: str) -> Iterator[Writer]:
    with psycopg.connect(db_url) as conn:
        yield Writer(conn)


def accepted(topic_name: str, payload: bytes) -> Accepted:
    return Accepted(topic_name, payload, parse(topic_name, payload, 1_000_000))


def test_a_message_the_database_refuses_becomes_a_dead_letter_and_the_rest_land(writer: Writer,
                                                                                 gateway_id: str) -> None:
    good = accepted(topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id, [gps_event(1)]))
    # Rows no validator would pass (a NUL in the reader name), as if validation had a gap.
    rfid_topic = topic(gateway_id, "rfid")
    row = (gateway_id, 2, NOW, "596F596F", None, "wh/door", "door\x00", 1, -50.0, 1, NOW, None)
    refused = Accepted(rfid_topic, b"{...}", Rows(observations=[row], read_points={"wh/door"}))
    rejected = (rfid_topic, b"\x00\xff", "bad time: \x00\ud800")  # a reason quoting what it rejects

    written = writer.write(Batch(accepted=[good, refused], dead=[rejected]))

    assert (written.positions, written.observations, written.unstorable, written.dead_letters) == (1, 0, 1, 2)
    letters = dict(writer.conn.execute("SELECT payload, reason FROM dead_letters").fetchall())
    assert letters[b"{...}"].startswith("unstorable: ")
    assert letters[b"\x00\xff"] == "bad time: \\x00\\ud800"
    assert writer.conn.execute("SELECT count(*) FROM positions").fetchone()[0] == 1


def test_a_value_the_binary_copy_cannot_write_is_a_dead_letter_not_a_crash(writer: Writer, gateway_id: str) -> None:
    """Defence behind validation: a float where the column is an integer (as 7.0 once slipped through)."""
    gps_topic = topic(gateway_id, "gps")
    row = (gateway_id, 1, NOW, "TRK-042", 31.2, 121.4, None, None, None, 7.0, None, None, None)
    good = accepted(gps_topic, batch(GPS_SCHEMA, gateway_id, [gps_event(2)]))
    written = writer.write(Batch(accepted=[Accepted(gps_topic, b"sats 7.0", Rows(positions=[row])), good]))
    assert (written.positions, written.unstorable) == (1, 1)
    (reason,) = writer.conn.execute("SELECT reason FROM dead_letters WHERE payload = 'sats 7.0'").fetchone()
    assert "cannot be interpreted as an integer" in reason


def test_a_failed_batch_leaves_the_connection_usable_for_the_next(writer: Writer, gateway_id: str) -> None:
    gps_topic = topic(gateway_id, "gps")
    bad_row = (gateway_id, 1, NOW, "TRK\x00", 1.0, 1.0, None, None, None, None, None, None, None)
    writer.write(Batch(accepted=[Accepted(gps_topic, b"x", Rows(positions=[bad_row]))]))
    written = writer.write(Batch(accepted=[accepted(gps_topic, batch(GPS_SCHEMA, gateway_id, [gps_event(2)]))]))
    assert (written.positions, written.unstorable) == (1, 0)


@pytest.mark.parametrize(("kind", "payload"), [
    ("gps", b'{"schema":"cargotrace.gps/1","gateway":"gw-1","events":[{"lat":NaN}]}'),
    ("state", b"[" * 100_000),
    ("state", b'{"schema":"cargotrace.state/1","gateway":"gw-1","state":"online","ts":"' + iso_ms(NOW).encode()
     + b'","counters":{"x":1e400}}'),
])
def test_numbers_and_nesting_python_parses_but_postgresql_refuses_are_rejected(kind: str, payload: bytes) -> None:
    with pytest.raises(Rejected, match="invalid json"):
        parse(f"cargotrace/v1/gw-1/{kind}", payload, 1_000_000)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reader=NASTY_TEXT, software=NASTY_TEXT, devices=JSON_VALUES)
def test_whatever_validation_accepts_the_database_stores(writer: Writer, reader: str, software: str,
                                                         devices: object) -> None:
    rfid = batch(RFID_SCHEMA, "gw-1", [rfid_event(next(SEQS), reader=reader)])
    state = json.dumps({"schema": STATE_SCHEMA, "gateway": "gw-1", "state": "online", "ts": iso_ms(NOW),
                        "software": software, "devices": {"reader": devices}}).encode()
    messages = []
    for kind, payload in (("rfid", rfid), ("state", state)):
        try:
            messages.append(accepted(f"cargotrace/v1/gw-1/{kind}", payload))
        except Rejected as exc:
            assert exc.reason in ("unstorable text", "schema violation", "invalid json")
    written = writer.write(Batch(accepted=messages))
    assert written.unstorable == 0
    assert written.observations == sum(m.topic.endswith("rfid") for m in messages)
