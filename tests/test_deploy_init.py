"""`cargotrace deploy init`: a new installation's secrets, proven by a real Mosquitto that uses them and a
gateway check over TLS against it; never written over an existing installation's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from cryptography import x509

from firmware_configs.broker_credentials import new_password, write_user
from gateway.check import check
from tests.brokers import Mosquitto
from tests.test_broker_acl import ACL, connect

FILES = {"secrets/db_password": 0o600, "secrets/ingest_mqtt_password": 0o600, "mosquitto/certs/ca.key": 0o600,
         "mosquitto/certs/ca.crt": 0o644, "mosquitto/certs/server.key": 0o600, "mosquitto/certs/server.crt": 0o644,
         "mosquitto/cargotrace.passwd": 0o600}


def deploy_init(folder: Path, *hosts: str) -> subprocess.CompletedProcess[str]:
    args = [arg for host in hosts for arg in ("--host", host)]
    return subprocess.run([sys.executable, "-m", "launcher.cli", "deploy", "init", "--dir", str(folder), *args],
                          capture_output=True, text=True, timeout=60)


def test_the_secrets_are_written_once_with_owner_only_modes(tmp_path: Path) -> None:
    folder = tmp_path / "deploy"
    first = deploy_init(folder, "mqtt.example.internal", "127.0.0.1")
    assert first.returncode == 0, first.stderr
    assert {str(p.relative_to(folder)): p.stat().st_mode & 0o777 for p in folder.rglob("*") if p.is_file()} == FILES
    assert (folder / "secrets").stat().st_mode & 0o777 == 0o700
    server = x509.load_pem_x509_certificate((folder / "mosquitto/certs/server.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((folder / "mosquitto/certs/ca.crt").read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["mqtt.example.internal", "127.0.0.1"]
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    again = deploy_init(folder)
    assert again.returncode == 1 and len(again.stderr.splitlines()) == 1 and "Traceback" not in again.stderr
    assert again.stderr.startswith(f"error: {folder}/secrets/db_password, ") and "already exist" in again.stderr
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_a_broker_and_a_gateway_run_over_tls_on_what_it_wrote(tmp_path: Path) -> None:
    folder = tmp_path / "deploy"
    assert deploy_init(folder, "127.0.0.1").returncode == 0
    certs = folder / "mosquitto" / "certs"
    password = new_password()
    write_user(folder / "mosquitto" / "cargotrace.passwd", "dock-wh-sh9", password)  # as `gateway provision` does
    broker = Mosquitto(tmp_path / "broker", anonymous=False, extra=(
        f"password_file {folder / 'mosquitto/cargotrace.passwd'}\nacl_file {ACL}\ncafile {certs / 'ca.crt'}\n"
        f"certfile {certs / 'server.crt'}\nkeyfile {certs / 'server.key'}\n")).start()
    try:
        ingest, reason = connect(broker, "ingest", (folder / "secrets/ingest_mqtt_password").read_text(),
                                 tls_ca=certs / "ca.crt")
        assert not reason.is_failure
        ingest.loop_stop()
        (tmp_path / "dock.password").write_text(password)
        profile = tmp_path / "dock.yaml"
        profile.write_text(yaml.safe_dump({"gateway": {
            "id": "dock-wh-sh9", "broker": f"mqtts://127.0.0.1:{broker.port}", "tls_ca_file": str(certs / "ca.crt"),
            "password_file": str(tmp_path / "dock.password"), "outbox": str(tmp_path / "outbox.sqlite")},
            "jt808": {"listen": "127.0.0.1:0", "terminals": {"013912345678": "TRK-042"}}}))
        lines: list[str] = []
        assert check(str(profile), 1, lines.append) == 0, lines
        assert f"broker 127.0.0.1:{broker.port}: logged in as dock-wh-sh9, wrote its state topic" in lines
    finally:
        broker.stop()
