"""The gateway tells systemd it is ready and keeps petting the watchdog while its loop turns."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from device_drivers.simulators import open_pty_pair
from firmware_configs import load_profile
from gateway.runner import Gateway
from gateway.watchdog import Watchdog
from tests.test_gateway_runner import write_profile


def messages(sock: socket.socket, until: str) -> list[str]:
    got: list[str] = []
    while until not in got:
        got.append(sock.recv(256).decode())  # the socket's timeout fails the test if nothing comes
    return got


def test_ready_then_watchdog_while_running_then_stopping(tmp_path: Path, gateway_id: str, mqtt_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        gps_fd, gps_port = open_pty_pair()
        gateway = Gateway(load_profile(write_profile(tmp_path / "gw.yaml", gateway_id, mqtt_url, None, gps_port)))
        stop = threading.Event()
        thread = threading.Thread(target=gateway.run, args=(stop,))
        thread.start()
        try:
            assert messages(sock, "READY=1") == ["READY=1"]
            assert messages(sock, "WATCHDOG=1")[-1] == "WATCHDOG=1"
            assert messages(sock, "WATCHDOG=1")[-1] == "WATCHDOG=1"  # again: the loop keeps turning
        finally:
            stop.set()
            thread.join(10)
            os.close(gps_fd)
        assert "STOPPING=1" in messages(sock, "STOPPING=1")


def test_abstract_socket_addresses_and_no_systemd() -> None:
    name = f"ct-notify-{uuid.uuid4().hex[:8]}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        Watchdog({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(64) == b"READY=1"
    quiet = Watchdog({})
    quiet.ready()
    quiet.alive()  # outside systemd: nothing to send, nothing raised
    assert quiet.period is None and quiet.address == ""
