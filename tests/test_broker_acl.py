"""The shipped Mosquitto ACL on a real broker: a gateway writes only its own topics, an unknown
client is refused, ingest reads everything, and the legitimate path works end to end."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.brokers import Mosquitto
from tests.helpers import Subscriber, wait_for

ACL = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "cargotrace.acl"
USERS = {"dock-wh-sh1": "s3cret-dock", "truck-trk-042": "s3cret-truck", "ingest": "s3cret-ingest"}


@pytest.fixture
def broker(tmp_path: Path) -> Mosquitto:
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in USERS.items():  # hashed by mosquitto itself, as an operator does it
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    b = Mosquitto(tmp_path / "broker", anonymous=False, extra=f"password_file {passwd}\nacl_file {ACL}\n").start()
    yield b
    b.stop()


def connect(broker: Mosquitto, user: str, password: str, client_id: str = "",
            tls_ca: Path | None = None) -> tuple[mqtt.Client, object]:
    result: dict[str, object] = {}
    done = threading.Event()
    # MQTT 3.1.1, as gateways speak it
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or user)
    client.username_pw_set(user, password)
    if tls_ca:
        client.tls_set(ca_certs=str(tls_ca))

    def on_connect(c: mqtt.Client, u: object, f: object, reason: object, p: object) -> None:
        result["reason"] = reason
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert done.wait(10)
    return client, result["reason"]


def test_a_gateway_writes_only_its_own_topics_and_strangers_are_refused(broker: Mosquitto) -> None:
    reader = Subscriber(broker.url.replace("mqtt://", "mqtt://ingest:s3cret-ingest@"), "cargotrace/v1/#")
    dock, reason = connect(broker, "dock-wh-sh1", USERS["dock-wh-sh1"])
    assert not reason.is_failure
    dock.publish("cargotrace/v1/dock-wh-sh1/rfid", b"own", qos=1).wait_for_publish(10)
    wait_for(lambda: [m.payload for m in reader.messages] == [b"own"], what="the gateway's own message")
    # The dock's credentials used to write as the truck: the broker drops the message (and this
    # Mosquitto also drops the offending connection).
    forger, _ = connect(broker, "dock-wh-sh1", USERS["dock-wh-sh1"], client_id="dock-wh-sh1-forger")
    forger.publish("cargotrace/v1/truck-trk-042/gps", b"forged", qos=1)
    wait_for(lambda: not forger.is_connected(), what="the broker to act on the forged message")
    truck, _ = connect(broker, "truck-trk-042", USERS["truck-trk-042"])
    truck.publish("cargotrace/v1/truck-trk-042/gps", b"real", qos=1).wait_for_publish(10)
    wait_for(lambda: len(reader.messages) == 2, what="the truck's own message")
    assert [m.payload for m in reader.messages] == [b"own", b"real"]  # the forged one never arrived
    for client in (dock, forger, truck):
        client.loop_stop()
    reader.close()

    stranger, reason = connect(broker, "dock-wh-sh1", "wrong-password")
    assert reason.is_failure and reason.value in (0x86, 0x87)  # bad credentials / not authorized
    stranger.loop_stop()


def _ingest_session(broker: Mosquitto, client_id: str) -> tuple[mqtt.Client, list[bytes]]:
    """Ingest's persistent session (MQTT v5, clean_start=False, an hour's expiry), subscribed."""
    got: list[bytes] = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set("ingest", USERS["ingest"])
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda c, u, m: got.append(m.payload)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=properties)
    client.loop_start()
    client.subscribe("cargotrace/v1/+/+", qos=1)
    assert subscribed.wait(10)
    return client, got


def test_a_gateway_login_cannot_take_over_ingests_session_and_its_queue(broker: Mosquitto) -> None:
    """With ingest away, a gateway's credentials connecting under ingest's client id (clean_start=False)
    used to take over its session and make the broker discard the queue: 0 of 50 reached ingest."""
    ingest, _ = _ingest_session(broker, "cargotrace-ingest")
    ingest.disconnect()
    ingest.loop_stop()
    dock, _ = connect(broker, "dock-wh-sh1", USERS["dock-wh-sh1"])
    for n in range(50):
        dock.publish("cargotrace/v1/dock-wh-sh1/rfid", str(n).encode(), qos=1).wait_for_publish(10)
    intruder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cargotrace-ingest", protocol=mqtt.MQTTv5)
    intruder.username_pw_set("truck-trk-042", USERS["truck-trk-042"])
    connected = threading.Event()
    intruder.on_connect = lambda *_: connected.set()
    intruder.connect("127.0.0.1", broker.port, clean_start=False)
    intruder.loop_start()
    assert connected.wait(10)
    intruder.disconnect()
    intruder.loop_stop()
    ingest, got = _ingest_session(broker, "cargotrace-ingest")
    wait_for(lambda: len(got) == 50, timeout=15, what="ingest's 50 queued messages")
    assert sorted(int(p) for p in got) == list(range(50))
    for client in (ingest, dock):
        client.loop_stop()


def test_a_message_over_the_size_limit_is_refused_not_acknowledged_and_dropped(tmp_path: Path) -> None:
    """With `message_size_limit` Mosquitto PUBACKed an oversized message and dropped it without a trace:
    the sender deleted what the broker never kept. The shipped limit disconnects instead, so the sender
    keeps it (and its log says why)."""
    broker = Mosquitto(tmp_path / "plain").start()
    try:
        reader = Subscriber(broker.url, "cargotrace/v1/#")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="big-sender")  # MQTT 3.1.1, as gateways
        gone = threading.Event()
        client.on_disconnect = lambda *_: gone.set()
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        info = client.publish("cargotrace/v1/big-sender/rfid", b"x" * 2_000_000, qos=1)
        assert gone.wait(10)
        assert not info.is_published()
        client.loop_stop()
        assert reader.messages == []
        reader.close()
    finally:
        broker.stop()
