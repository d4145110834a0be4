"""`cargotrace gateway check`: a technician's bring-up of a box. Real devices on pseudo-terminals, real
brokers (the shared one, and throw-away ones with passwords and ACLs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import yaml

from device_drivers.rfid import mercury
from device_drivers.simulators import drive, open_pty_pair
from gateway.check import check
from launcher.embedded import free_port
from tests.brokers import Mosquitto
from tests.helpers import Subscriber, wait_for
from tests.test_broker_acl import USERS
from tests.test_gateway_runner import EPCS, write_profile


@contextmanager
def streaming(reader_fd: int, gps_fd: int) -> Iterator[None]:
    """A reader that sees one tag on antenna 1 only, and a receiver with a fix a second."""
    stop = threading.Event()

    def feed() -> None:
        epochs = drive([(31.2304, 121.4737), (31.2404, 121.4837)], speed_kmh=30, start=datetime.now(UTC))
        tick = 0
        while not stop.wait(0.1):
            tick += 1
            try:
                os.write(reader_fd, mercury.tag_record_frame(EPCS[0], 1, -55))
                if tick % 10 == 0:
                    os.write(gps_fd, next(epochs))
            except OSError:
                pass  # nobody has the port open yet: a device streams regardless
    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def test_a_check_shows_what_each_antenna_reads_and_publishes_none_of_it(
        tmp_path: Path, gateway_id: str, mqtt_url: str) -> None:
    reader_fd, reader_port = open_pty_pair()
    gps_fd, gps_port = open_pty_pair()
    profile = write_profile(tmp_path / "gw.yaml", gateway_id, mqtt_url, reader_port, gps_port)
    sub = Subscriber(mqtt_url, f"cargotrace/v1/{gateway_id}/#")
    lines: list[str] = []
    with streaming(reader_fd, gps_fd):
        assert check(str(profile), 4, lines.append) == 0
    port = mqtt_url.rsplit(":", 1)[1]
    assert f"broker 127.0.0.1:{port}: logged in as {gateway_id}, wrote its state topic" in lines
    seconds = [line for line in lines if re.match(r"\s*\d+ s  ", line)]
    assert len(seconds) == 4
    assert re.search(r"door-03: up, ant1 [1-9]\d*/s ant2 0/s, 1 tags \| gps: up, [1-9]\d* fixes, last 31\.2",
                     seconds[-1]), seconds
    assert lines[-3:] == [
        "warning: no gateway.password_file: the broker lets anyone in as this gateway (a test bench only)",
        "warning: door-03 antenna 2 (wh-sh1/door-03): no tag read in 4 s: hold a tag in front of it, check its cable",
        "verdict: ready (2 warning(s) above)"]
    wait_for(lambda: sub.messages, what="the gateway's state")
    assert [(m.topic, json.loads(m.payload)["state"]) for m in sub.messages] == [
        (f"cargotrace/v1/{gateway_id}/state", "offline")]  # no read, no fix: the check publishes nothing
    sub.close()
    for fd in (reader_fd, gps_fd):
        os.close(fd)


def test_an_unreachable_broker_and_a_missing_reader_are_named_with_their_remedy(
        tmp_path: Path, gateway_id: str) -> None:
    broker_port = free_port()
    profile = write_profile(tmp_path / "gw.yaml", gateway_id, f"mqtt://127.0.0.1:{broker_port}", "/dev/ttyNONE0", None)
    run = subprocess.run([sys.executable, "-m", "launcher.cli", "gateway", "check", "--config", str(profile),
                          "--seconds", "2"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stdout.splitlines()[-3:] == [
        f"problem: cannot reach the broker at 127.0.0.1:{broker_port} (Connection refused): check gateway.broker "
        f"and the network",
        "problem: door-03: did not open: cannot open /dev/ttyNONE0: No such file or directory",
        "verdict: 2 problem(s); fix them and check again"]


def _broker(tmp_path: Path, acl: str) -> Mosquitto:
    tmp_path.mkdir()
    passwd, rules = tmp_path / "passwd", tmp_path / "acl"
    passwd.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "dock-wh-sh1", USERS["dock-wh-sh1"]], check=True)
    rules.write_text(acl)
    return Mosquitto(tmp_path / "broker", anonymous=False,
                     extra=f"password_file {passwd}\nacl_file {rules}\n").start()


def _gateway_only(tmp_path: Path, broker: Mosquitto, password: str) -> Path:
    (tmp_path / "dock.password").write_text(password)
    profile = tmp_path / "dock.yaml"
    profile.write_text(yaml.safe_dump({"gateway": {"id": "dock-wh-sh1", "broker": broker.url,
                                                   "password_file": str(tmp_path / "dock.password"),
                                                   "outbox": str(tmp_path / "outbox.sqlite")},
                                       "jt808": {"listen": f"127.0.0.1:{free_port()}",
                                                 "terminals": {"013912345678": "TRK-042"}}}))
    return profile


def test_a_wrong_password_and_a_broker_that_denies_the_gateway_its_topics_are_problems(tmp_path: Path) -> None:
    strict = _broker(tmp_path / "strict", "pattern read cargotrace/v1/%u/command\n")
    try:
        lines: list[str] = []
        assert check(str(_gateway_only(tmp_path, strict, "wrong")), 1, lines.append) == 1
        assert re.fullmatch(rf"problem: the broker at 127\.0\.0\.1:{strict.port} refused the login as dock-wh-sh1 "
                            r"\(.+\): check gateway\.password_file, or make a new password with `cargotrace gateway "
                            r"provision dock-wh-sh1`", lines[-2]), lines
        lines.clear()
        assert check(str(_gateway_only(tmp_path, strict, USERS["dock-wh-sh1"])), 1, lines.append) == 1
        assert lines[-2] == (f"problem: the broker at 127.0.0.1:{strict.port} does not let dock-wh-sh1 write "
                             f"cargotrace/v1/dock-wh-sh1/state: its ACL must give each gateway its own topics "
                             f"(deploy/mosquitto/cargotrace.acl)")
    finally:
        strict.stop()
    shipped = _broker(tmp_path / "shipped", (Path(__file__).parent.parent / "deploy/mosquitto/cargotrace.acl")
                      .read_text())
    try:
        lines = []
        assert check(str(_gateway_only(tmp_path, shipped, USERS["dock-wh-sh1"])), 1, lines.append) == 0
        assert lines[-1] == "verdict: ready" and any(line.startswith("jt808: 127.0.0.1:") for line in lines)
    finally:
        shipped.stop()
