"""A gateway's list of brokers (a cluster's nodes): tried in order, the next one when a broker is gone, what
was not acknowledged sent again there; a profile with one broker is as valid as before."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_configs import validate_file
from firmware_configs.profile import Gateway
from gateway.outbox import Outbox
from gateway.publisher import Publisher
from launcher.embedded import free_port
from tests.brokers import Mosquitto
from tests.helpers import Subscriber, wait_for
from tests.test_ingest_worker import gps_event

FIX = {k: v for k, v in gps_event(0).items() if k != "seq"}  # the outbox gives the seq
broker_urls = st.from_regex(r"mqtts?://[a-z0-9.-]{1,30}(:[0-9]{1,5})?", fullmatch=True)


@given(broker_urls)
def test_a_profile_with_one_broker_is_valid_as_before(url: str) -> None:
    assert Gateway(id="dock-1", broker=url).brokers == [url]


@given(st.lists(broker_urls, min_size=1, max_size=5))
def test_a_list_of_brokers_is_tried_in_its_order(urls: list[str]) -> None:
    assert Gateway(id="dock-1", broker=urls).brokers == urls


@given(st.lists(broker_urls, max_size=3), st.text(max_size=20).filter(lambda t: not t.startswith("mqtt")))
def test_a_list_with_anything_but_broker_urls_is_refused(urls: list[str], other: str) -> None:
    with pytest.raises(ValueError, match="broker"):
        Gateway(id="dock-1", broker=[*urls, other])


def test_config_validate_names_the_bad_entry_of_the_list(tmp_path: Path) -> None:
    profile = tmp_path / "gw.yaml"
    profile.write_text("gateway:\n  id: dock-1\n  broker:\n    - mqtt://nats-1:1883\n    - http://nats-2:1883\n"
                       "gps: {port: /dev/null, vehicle: TRK-1}\n")
    assert validate_file(profile) == [f"{profile}:4: gateway.broker: 'http://nats-2:1883' is no broker URL: "
                                      f"mqtt://HOST:PORT or mqtts://HOST:PORT"]
    profile.write_text("gateway:\n  id: dock-1\n  broker: []\ngps: {port: /dev/null, vehicle: TRK-1}\n")
    assert validate_file(profile) == [f"{profile}:3: gateway.broker: a list of brokers names at least one"]


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[Mosquitto, Mosquitto]]:
    a, b = Mosquitto(tmp_path / "a").start(), Mosquitto(tmp_path / "b").start()
    yield a, b
    a.stop()
    b.stop()


def test_the_gateway_moves_to_the_next_broker_and_sends_there_what_was_not_acknowledged(
        tmp_path: Path, brokers: tuple[Mosquitto, Mosquitto]) -> None:
    a, b = brokers
    gateway_id = f"gw-{uuid.uuid4().hex[:8]}"
    on_a, on_b = (Subscriber(broker.url, f"cargotrace/v1/{gateway_id}/gps") for broker in brokers)
    nobody = f"mqtt://127.0.0.1:{free_port()}"  # the first of the list is down from the start
    cfg = Gateway(id=gateway_id, broker=[nobody, a.url, b.url], outbox=str(tmp_path / "outbox.sqlite"),
                  keep_acked_s=0)
    outbox = Outbox(cfg.outbox, keep_acked_s=0)
    publisher = Publisher(cfg, outbox)
    stop = threading.Event()

    def main_loop() -> None:  # what the gateway's loop does between device reads
        while not stop.is_set():
            publisher.pump()
            time.sleep(0.02)

    loop = threading.Thread(target=main_loop)
    publisher.start()
    loop.start()
    try:
        outbox.append_many([("gps", FIX, False)] * 100)
        assert {e["seq"] for e in on_a.wait_events("gps", 100)} == set(range(1, 101))
        wait_for(lambda: outbox.depth() == 0, what="a's acknowledgements")
        a.stop(signal.SIGKILL)
        outbox.append_many([("gps", FIX, False)] * 100)
        assert {e["seq"] for e in on_b.wait_events("gps", 100)} >= set(range(101, 201))  # after a: b
        wait_for(lambda: outbox.depth() == 0, what="b's acknowledgements")
    finally:
        stop.set()
        loop.join(10)
        publisher.stop()
        on_a.close()
        on_b.close()
    assert publisher.published_events >= 200
