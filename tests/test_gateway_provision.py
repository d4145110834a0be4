"""`cargotrace gateway provision`: a new gateway's password works on a real Mosquitto with the shipped
ACL, for its own topics only; its profile is valid; provisioning again rotates the password."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_configs import load_profile
from firmware_configs.broker_credentials import acl_problems, hash_password, set_user
from launcher.cli import main
from tests.brokers import Mosquitto
from tests.helpers import Subscriber, wait_for
from tests.test_broker_acl import ACL, connect


def provision(capsys: pytest.CaptureFixture[str], folder: Path, *args: str) -> str:
    capsys.readouterr()
    assert main(["gateway", "provision", *args, "--password-file", str(folder / "passwd"),
                 "--acl", str(ACL), "--profile-dir", str(folder), "--broker", "mqtt://127.0.0.1:1883"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1  # the password, and nothing else on stdout
    return out[0]


def test_a_provisioned_gateway_publishes_its_own_topics_and_not_another_s(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = provision(capsys, tmp_path, "dock-wh-x1", "--site", "wh-x1", "--doors", "door-01,door-02")
    other = provision(capsys, tmp_path, "truck-trk-007", "--kind", "truck", "--vehicle", "TRK-007")
    # The ingest account, made the way the operator makes it, shares the file.
    subprocess.run(["mosquitto_passwd", "-b", str(tmp_path / "passwd"), "ingest", "s3cret-ingest"], check=True)
    profile = load_profile(tmp_path / "dock-wh-x1.yaml")
    assert profile.gateway.id == "dock-wh-x1"
    assert [a.read_point for r in profile.readers for a in r.antennas] == ["wh-x1/door-01"] * 2 + ["wh-x1/door-02"] * 2
    assert load_profile(tmp_path / "truck-trk-007.yaml").gps.vehicle == "TRK-007"

    broker = Mosquitto(tmp_path / "broker", anonymous=False,
                       extra=f"password_file {tmp_path / 'passwd'}\nacl_file {ACL}\n").start()
    try:
        reader = Subscriber(broker.url.replace("mqtt://", "mqtt://ingest:s3cret-ingest@"), "cargotrace/v1/#")
        dock, reason = connect(broker, "dock-wh-x1", new)
        assert not reason.is_failure
        dock.publish("cargotrace/v1/dock-wh-x1/rfid", b"own", qos=1).wait_for_publish(10)
        wait_for(lambda: [m.payload for m in reader.messages] == [b"own"], what="the new gateway's message")
        dock.publish("cargotrace/v1/truck-trk-007/gps", b"forged", qos=1)
        wait_for(lambda: not dock.is_connected(), what="the broker to act on the forged message")
        truck, reason = connect(broker, "truck-trk-007", other)
        assert not reason.is_failure
        truck.publish("cargotrace/v1/truck-trk-007/gps", b"real", qos=1).wait_for_publish(10)
        wait_for(lambda: len(reader.messages) == 2, what="the other gateway's own message")
        assert [m.payload for m in reader.messages] == [b"own", b"real"]  # the forged one never arrived
        for client in (dock, truck):
            client.loop_stop()
        reader.close()
    finally:
        broker.stop()

    # Again: a new password replaces the old one; the profile (maybe edited on the box) is kept.
    edited = (tmp_path / "dock-wh-x1.yaml").read_text().replace("power_dbm: 27", "power_dbm: 24")
    (tmp_path / "dock-wh-x1.yaml").write_text(edited)
    rotated = provision(capsys, tmp_path, "dock-wh-x1", "--site", "wh-x1", "--doors", "door-01")
    assert rotated != new and (tmp_path / "dock-wh-x1.yaml").read_text() == edited
    users = [line.split(":")[0] for line in (tmp_path / "passwd").read_text().splitlines()]
    assert users == ["dock-wh-x1", "truck-trk-007", "ingest"]
    broker = Mosquitto(tmp_path / "broker2", anonymous=False,
                       extra=f"password_file {tmp_path / 'passwd'}\nacl_file {ACL}\n").start()
    try:
        for password, refused in ((new, True), (rotated, False)):
            client, reason = connect(broker, "dock-wh-x1", password)
            assert reason.is_failure == refused
            client.loop_stop()
    finally:
        broker.stop()


def test_names_the_acl_gives_other_rights_and_bad_ids_are_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for gateway_id in ("ingest", "Dock_1", "a/b"):
        with pytest.raises(SystemExit) as exc:
            main(["gateway", "provision", gateway_id, "--site", "s", "--doors", "d", "--acl", str(ACL),
                  "--password-file", str(tmp_path / "passwd"), "--profile-dir", str(tmp_path)])
        assert "error" in str(exc.value)
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().out == ""


def test_the_acl_check_names_each_missing_gateway_pattern() -> None:
    shipped = ACL.read_text()
    assert acl_problems(shipped, "dock-new") == []
    crippled = shipped.replace("pattern write cargotrace/v1/%u/gps\n", "")
    assert acl_problems(crippled, "dock-new") == ["the ACL lacks 'pattern write cargotrace/v1/%u/gps'"]


def test_the_hash_is_pbkdf2_sha512_as_mosquitto_passwd_writes_it(tmp_path: Path) -> None:
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(tmp_path / "p"), "u", "pw"], check=True)
    theirs = (tmp_path / "p").read_text().strip().split(":", 1)[1]
    salt = base64.b64decode(theirs.split("$")[3])
    assert hash_password("pw", salt) == theirs
    assert hash_password("pw2", salt) != theirs


users = st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True)
hashes = st.text(alphabet="$0123456789abc+/=", min_size=1, max_size=20)


@given(st.lists(st.tuples(users, hashes), unique_by=lambda u: u[0]), users, hashes)
def test_setting_a_user_changes_only_its_line(existing: list[tuple[str, str]], user: str, new_hash: str) -> None:
    text = "".join(f"{u}:{h}\n" for u, h in existing)
    lines = set_user(text, user, new_hash).splitlines()
    expected = [f"{u}:{new_hash if u == user else h}" for u, h in existing]
    if user not in dict(existing):
        expected.append(f"{user}:{new_hash}")
    assert lines == expected


def _with_master_data(tmp_path: Path, db_url: str) -> tuple[Callable[..., subprocess.CompletedProcess[str]],
                                                                list[str]]:
    """The command line on the test database, and provisioning's files in tmp_path."""
    env = {**os.environ, "CARGOTRACE_DATABASE_URL": db_url}

    def cargotrace(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "launcher.cli", *args], env=env, capture_output=True, text=True,
                              timeout=60)

    return cargotrace, ["--password-file", str(tmp_path / "passwd"), "--acl", str(ACL), "--profile-dir",
                        str(tmp_path), "--broker", "mqtt://127.0.0.1:1883"]


def test_provisioning_registers_the_gateway_in_the_master_data_or_refuses_before_writing(
        tmp_path: Path, db_url: str) -> None:
    cargotrace, where = _with_master_data(tmp_path, db_url)
    refused = cargotrace("gateway", "provision", "dock-wh-x9", "--site", "wh-x9", "--doors", "door-01", *where)
    assert refused.returncode == 1 and refused.stderr.splitlines() == [
        "error: dock-wh-x9: the master data refuses it: site_id: unknown site 'wh-x9' (add the site, its doors or "
        "the vehicle first: cargotrace sites add / cargotrace vehicles add)"]
    assert not (tmp_path / "dock-wh-x9.yaml").exists() and not (tmp_path / "passwd").exists()
    assert cargotrace("sites", "add", "wh-x9", "--name", "Warehouse X9", "--geofence",
                      '{"lat": 31.2, "lon": 121.4, "radius_m": 200}', "--doors", "door-01,door-02").returncode == 0
    done = cargotrace("gateway", "provision", "dock-wh-x9", "--site", "wh-x9", "--doors", "door-01,door-02", *where)
    assert done.returncode == 0 and "; registered in the master data" in done.stderr
    assert json.loads(cargotrace("gateways", "show", "dock-wh-x9").stdout) == {
        "id": "dock-wh-x9", "kind": "dock", "site_id": "wh-x9", "vehicle_id": None,
        "read_points": ["wh-x9/door-01", "wh-x9/door-02"]}


def test_a_fleet_gateway_serves_the_terminals_the_master_data_gives_the_vehicles(tmp_path: Path, db_url: str) -> None:
    cargotrace, where = _with_master_data(tmp_path, db_url)
    empty = cargotrace("gateway", "provision", "fleet-sh", "--kind", "fleet", *where)
    assert empty.returncode == 1 and empty.stderr.splitlines() == [
        "error: no vehicle has a telematics id: give them one first (cargotrace vehicles add ID --telematics-id "
        "NUMBER)"]
    for vehicle, telematics in (("TRK-042", "013912345678"), ("TRK-077", "356307042441013"), ("TRK-080", None)):
        assert cargotrace("vehicles", "add", vehicle, *(("--telematics-id", telematics) if telematics else ())
                          ).returncode == 0
    done = cargotrace("gateway", "provision", "fleet-sh", "--kind", "fleet", *where)
    assert done.returncode == 0, done.stderr
    profile = load_profile(tmp_path / "fleet-sh.yaml")
    assert profile.jt808 is not None and profile.jt808.terminals == {"013912345678": "TRK-042"}
    assert profile.teltonika is not None and profile.teltonika.devices == {"356307042441013": "TRK-077"}
    assert json.loads(cargotrace("gateways", "show", "fleet-sh").stdout)["kind"] == "fleet"
