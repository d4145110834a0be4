"""Scale-out on the real services: two ingest workers share the stream (no loss, no duplicates) and
two API processes on one database both push a change to their own live clients (LISTEN/NOTIFY)."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from common import epc
from common.contract import RFID_SCHEMA, batch, topic
from launcher.embedded import free_port
from tests.api_world import World
from tests.brokers import Mosquitto
from tests.helpers import Processes, SseReader, wait_for
from tests.test_faults_ingest import Stream, counts
from tests.test_ingest_worker import rfid_event


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


def test_two_ingest_workers_and_two_api_processes(world: World, broker: Mosquitto, tmp_path: Path) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    procs = Processes({**os.environ, "CARGOTRACE_DATABASE_URL": world.db_url, "CARGOTRACE_MQTT_URL": broker.url,
                       "CARGOTRACE_INGEST_SHARED_GROUP": group, "CARGOTRACE_CRM_POLL_SECONDS": "0.5"}, tmp_path)
    ports = [free_port(), free_port()]
    readers: list[SseReader] = []
    try:
        for n in (1, 2):
            procs.env = {**procs.env, "CARGOTRACE_INGEST_CLIENT_ID": f"ingest-{n}-{group}"}
            procs.start(f"ingest-{n}", "ingest")
        procs.start("crm", "crm", "run")
        for n, port in enumerate(ports, 1):
            procs.start(f"api-{n}", "api", "--port", str(port))
        for n in (1, 2):
            wait_for(lambda n=n: "subscribed" in procs.log(f"ingest-{n}"), what=f"ingest-{n} to subscribe")
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            wait_for(lambda url=url: _live(url), what=f"{url} to listen for changes")
        readers = [SseReader(f"{urls[0]}/v1/stream", world.headers("dispatcher")),
                   SseReader(f"{urls[1]}/v1/shipments/SO-A1/stream", world.headers("acme"))]
        assert readers[1].next("status")[1]["status"] == "pending"

        stream = Stream(broker.url)
        sent = stream.publish(400)  # 2 000 fixes from four gateways
        stream.close()
        assert readers[0].next("position", timeout=30)[1]["vehicle_id"] == "TRK-042"
        _publish_loading(broker.url, world.epc["acme"])
        # both API processes hear the transition committed by the CRM worker
        assert readers[0].next("status", timeout=30)[1]["status"] == "loaded"
        assert readers[1].next("status", timeout=30)[1]["status"] == "loaded"
        before = 2  # the world's own fixes
        total = wait_for(lambda: (c := counts(world.db_url))[0] >= before + sent and c, timeout=120,
                         what="every fix stored")
        assert total[:2] == (before + sent, before + sent)  # none lost, none twice
        procs.check_alive()
    finally:
        for reader in readers:
            reader.close()
        procs.stop()
    shares = [_messages(procs.log(f"ingest-{n}")) for n in (1, 2)]
    assert all(share > 0 for share in shares) and sum(shares) == 400 + 1  # the stream was split, not copied


def _live(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).json().get("live") is True
    except httpx.HTTPError:
        return False


def _publish_loading(url: str, epc_uri: str) -> None:
    """The dock door's gateway reports acme's pallet read out at the origin door."""
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(host, int(port))
    client.loop_start()
    gateway = f"dock-{uuid.uuid4().hex[:6]}"
    info = client.publish(topic(gateway, "rfid"), batch(RFID_SCHEMA, gateway, [rfid_event(1, epc.encode(epc_uri))]),
                          qos=1)
    info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def _messages(log: str) -> int:
    """Messages a worker stored, from its last words ("ingest stopped: {counters}")."""
    found = re.findall(r"ingest stopped: (\{.*\})", log)
    assert found, log[-2000:]
    return int(json.loads(found[-1]).get("messages", 0))
