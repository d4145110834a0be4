"""Clock faults on real gateway processes (libfaketime shifts a process's clock; the GPS receiver's time
comes from its NMEA), through the real broker into ingest and the database.

- a dock gateway whose clock is days fast: its reads are quarantined (dead letters), never stored, and
  its state messages are refused as well;
- a truck gateway whose clock is days off either way, with a good receiver: every fix flows, and
  the box reports how far its clock is off GPS time;
- a receiver that puts out one fix 20 h ahead: the gateway drops it and keeps the track.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
import yaml

from common import epc
from device_drivers.simulators import drive, fix_sentences, open_pty_pair, portal_passage
from tests.helpers import Subscriber, wait_for
from tests.test_gateway_runner import write_profile
from tests.test_ingest_worker import count, dead_letters, running, worker_settings

ROUTE = [(31.2304, 121.4737), (31.2404, 121.4837)]
FAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), Path("libfaketime.so.1"))


@contextmanager
def gateway(profile: Path, clock: str | None, logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A gateway process; `clock` shifts its clock (libfaketime's offset, e.g. "+3d"), preloaded into the
    process itself, so that its pid is the gateway's (the `faketime` command would stand between)."""
    assert FAKETIME.exists(), "libfaketime is needed (make test installs the faketime package)"
    shifted = {"LD_PRELOAD": str(FAKETIME), "FAKETIME": clock, "FAKETIME_DONT_FAKE_MONOTONIC": "1"} if clock else {}
    with (logs / f"{profile.stem}.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", "gateway", "--config", str(profile)],
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **shifted})
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(20)
        if clock:  # its retained state carries the wrong time: no later subscriber of the shared broker needs it
            _clear_state(yaml.safe_load(profile.read_text())["gateway"])


def _clear_state(gateway: dict) -> None:
    host, port = gateway["broker"].removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(host, int(port))
    client.loop_start()
    client.publish(f"cargotrace/v1/{gateway['id']}/state", b"", qos=1, retain=True).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def _started(fd: int) -> None:
    """The gateway opened the reader's port: it asks the reader to stream."""
    heard = b""
    while b"\xff" not in heard:
        heard += os.read(fd, 256)


def _gps_open(states: Subscriber) -> None:
    """The gateway says its GPS port is open (bytes written before would be flushed by the open)."""
    wait_for(lambda: any(s["devices"].get("gps") == "up" for s in _states(states)),
             what="the gateway to open its GPS port")


def _states(states: Subscriber) -> list[dict]:
    return [json.loads(m.payload) for m in list(states.messages) if m.payload]  # b"": the retained one cleared


@pytest.fixture
def ingest(db_url: str, mqtt_url: str) -> Iterator[None]:
    with running(worker_settings(db_url, mqtt_url)):
        yield


def test_a_dock_gateway_days_fast_has_its_reads_quarantined_while_a_right_one_lands(
        ingest: None, db_url: str, mqtt_url: str, gateway_id: str, tmp_path: Path) -> None:
    tags = [epc.encode(epc.sgtin_uri("0614141", "812345", n), filter_=6) for n in range(3)]
    (tmp_path / "fast").mkdir()
    (tmp_path / "right").mkdir()
    fast_fd, fast_port = open_pty_pair()
    right_fd, right_port = open_pty_pair()
    held = [os.open(p, os.O_RDWR | os.O_NOCTTY) for p in (fast_port, right_port)]
    fast = write_profile(tmp_path / "fast" / "fast.yaml", f"{gateway_id}-f", mqtt_url, fast_port, None)
    right = write_profile(tmp_path / "right" / "right.yaml", f"{gateway_id}-r", mqtt_url, right_port, None)
    with gateway(fast, "+3d", tmp_path), gateway(right, None, tmp_path):
        for fd in (fast_fd, right_fd):
            _started(fd)
            os.write(fd, portal_passage(tags, outer=1, inner=2, outward=True))
        wait_for(lambda: count(db_url, "tag_observations") == 3, what="the right one's reads")
        wait_for(lambda: len(_reads_quarantined(db_url, f"{gateway_id}-f")) == 3, what="the fast one's, quarantined")
    with psycopg.connect(db_url) as conn:
        gateways = {g for (g,) in conn.execute("SELECT DISTINCT gateway_id FROM tag_observations")}
    letters = _reads_quarantined(db_url, f"{gateway_id}-f")
    assert gateways == {f"{gateway_id}-r"}
    assert sorted(json.loads(p)["epc"] for _, p, _ in letters) == sorted(tags)
    assert all(r.startswith("time ahead: ") and " 3.0 d after its receipt" in r for _, _, r in letters)
    for fd in (fast_fd, right_fd, *held):
        os.close(fd)


@pytest.mark.parametrize("clock", ["-3d", "+3d"])
def test_a_truck_gateway_with_its_clock_days_off_keeps_every_fix_and_says_how_far_off_it_is(
        ingest: None, db_url: str, mqtt_url: str, gateway_id: str, tmp_path: Path, clock: str) -> None:
    fd, port = open_pty_pair()
    held = os.open(port, os.O_RDWR | os.O_NOCTTY)
    profile = write_profile(tmp_path / "truck.yaml", gateway_id, mqtt_url, None, port)
    states = Subscriber(mqtt_url, f"cargotrace/v1/{gateway_id}/state")
    epochs = list(drive(ROUTE, 60.0, start=datetime.now(UTC)))
    with gateway(profile, clock, tmp_path):
        _gps_open(states)
        for epoch in epochs:
            os.write(fd, epoch)
        wait_for(lambda: count(db_url, "positions") >= 3, what="the drive's fixes")
    with psycopg.connect(db_url) as conn:
        (latest,) = conn.execute("SELECT max(ts) FROM positions").fetchone()
    assert abs(latest - datetime.now(UTC)) < timedelta(hours=1)  # GPS time, not the box's
    assert [t for t, _, _ in dead_letters(db_url, gateway_id) if t.endswith("/gps")] == []
    days = float(clock[:-1])
    # The offline state of its clean stop carries the counters: the clock's offset among them.
    offline = wait_for(lambda: [s for s in _states(states) if s["state"] == "offline"], what="the offline state")
    states.close()
    assert abs(offline[-1]["counters"]["clock_offset_s"] - days * 86400) < 120
    assert f"clock is {days * 86400:+.0f}"[:-3] in (tmp_path / "truck.log").read_text()  # and said so in its log
    os.close(held)
    os.close(fd)


def test_one_receiver_fix_20_hours_ahead_is_dropped_at_the_gateway_and_the_track_goes_on(
        ingest: None, db_url: str, mqtt_url: str, gateway_id: str, tmp_path: Path) -> None:
    fd, port = open_pty_pair()
    held = os.open(port, os.O_RDWR | os.O_NOCTTY)
    profile = write_profile(tmp_path / "truck.yaml", gateway_id, mqtt_url, None, port)
    states = Subscriber(mqtt_url, f"cargotrace/v1/{gateway_id}/state")
    start = datetime.now(UTC).replace(microsecond=0)  # as the receiver's epochs are
    epochs = list(drive(ROUTE, 60.0, start=start))
    bad_at = start + timedelta(seconds=20, hours=20)
    epochs[20] = fix_sentences(bad_at, 31.2330, 121.4760, 60.0, 45.0)  # a receiver fault mid-drive
    epochs.append(fix_sentences(start + timedelta(seconds=len(epochs)), *ROUTE[-1], 0.0, 0.0))  # ends the last epoch
    with gateway(profile, None, tmp_path):
        _gps_open(states)
        for epoch in epochs:
            os.write(fd, epoch)
        end = start + timedelta(seconds=len(epochs) - 2)
        wait_for(lambda: (_latest(db_url) or start) >= end, what="the fix at the end of the drive")
    with psycopg.connect(db_url) as conn:
        (future,) = conn.execute("SELECT count(*) FROM positions WHERE ts > now() + interval '1 hour'").fetchone()
    assert future == 0 and dead_letters(db_url, gateway_id) == []
    states.close()
    os.close(held)
    os.close(fd)


def _reads_quarantined(db_url: str, gateway: str) -> list[tuple[str, bytes, str]]:
    return [letter for letter in dead_letters(db_url, gateway) if letter[0].endswith("/rfid")]


def _latest(db_url: str) -> datetime | None:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT max(ts) FROM positions").fetchone()[0]
