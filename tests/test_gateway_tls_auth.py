"""A gateway authenticates with its id and password file, over TLS, to a Mosquitto running the
shipped ACL; its events arrive, and a gateway with a wrong password gets nothing through."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import yaml

from device_drivers.rfid import mercury as enc
from device_drivers.simulators import open_pty_pair
from firmware_configs import load_profile
from gateway.runner import Gateway
from tests.brokers import Mosquitto
from tests.helpers import wait_for
from tests.test_broker_acl import ACL, connect

DAYS = "2"


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl)."""
    paths = {name: folder / f"{name}" for name in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")}
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", DAYS, "-subj", "/CN=cargotrace test CA",
        "-keyout", str(paths["ca.key"]), "-out", str(paths["ca.crt"]))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(paths["server.key"]),
        "-out", str(paths["server.csr"]))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(paths["server.csr"]), "-CA", str(paths["ca.crt"]), "-CAkey", str(paths["ca.key"]),
        "-CAcreateserial", "-days", DAYS, "-extfile", str(ext), "-out", str(paths["server.crt"]))
    return paths


def test_gateway_over_tls_with_its_password(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in (("dock-tls", "dock-secret"), ("ingest", "ingest-secret")):
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    broker = Mosquitto(tmp_path / "broker", anonymous=False, extra=(
        f"password_file {passwd}\nacl_file {ACL}\ncafile {certs['ca.crt']}\n"
        f"certfile {certs['server.crt']}\nkeyfile {certs['server.key']}\n"))
    broker.start()
    (tmp_path / "dock.password").write_text("dock-secret\n")
    reader_fd, reader_port = open_pty_pair()
    profile_file = tmp_path / "dock.yaml"
    profile_file.write_text(yaml.safe_dump({
        "gateway": {"id": "dock-tls", "broker": f"mqtts://127.0.0.1:{broker.port}",
                    "password_file": str(tmp_path / "dock.password"), "tls_ca_file": str(certs["ca.crt"]),
                    "outbox": str(tmp_path / "outbox.sqlite"), "smoothing": {"absent_s": 0.2}},
        "readers": [{"name": "door", "protocol": "thingmagic-mercury", "port": reader_port,
                     "antennas": [{"port": 1, "read_point": "wh-sh1/door-03"}]}]}))
    received: list[bytes] = []
    ingest, reason = connect(broker, "ingest", "ingest-secret", tls_ca=certs["ca.crt"])
    assert not reason.is_failure
    ingest.on_message = lambda c, u, m: received.append(m.payload)
    ingest.subscribe("cargotrace/v1/+/rfid", qos=1)
    gateway = Gateway(load_profile(profile_file))
    stop = threading.Event()
    thread = threading.Thread(target=gateway.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: gateway.publisher.connected.is_set() and gateway.publisher.devices.get("door") == "up",
                 what="the gateway connected over TLS with its device open")
        os.write(reader_fd, enc.tag_record_frame("3074257BF7194E4000001A85", 1, -50) * 3)
        wait_for(lambda: received, what="the gateway's observation through the broker")
    finally:
        stop.set()
        thread.join(10)
        ingest.loop_stop()
        os.close(reader_fd)
        broker.stop()
    assert b"3074257BF7194E4000001A85" in received[0]
