"""Profiles: validation with file, line and field; `config apply` against a simulated module."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.rfid.mercury import ModuleError
from device_drivers.rfid.r2000 import ReaderError
from device_drivers.simulators import MercuryModule, R2000Reader, open_pty_pair
from firmware_configs import load_profile, validate_file
from firmware_configs.apply import apply_reader, commands
from firmware_configs.profile import MIN_DBM, REGIONS, Reader
from launcher.cli import main

PROFILES = Path(__file__).resolve().parent.parent / "firmware_configs" / "profiles"


@pytest.mark.parametrize("profile", sorted(PROFILES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_profiles_are_valid(profile: Path) -> None:
    assert validate_file(profile) == []
    assert load_profile(profile).version


def test_every_error_is_reported_with_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway:\n  id: Dock_1\n  broker: http://x\nreaders:\n  - name: d3\n    protocol: acme-9000\n"
                   "    port: /dev/ttyUSB0\n    antennas: []\n")
    errors = validate_file(bad)
    assert any(e.startswith(f"{bad}:2: gateway.id:") for e in errors)
    assert any(e.startswith(f"{bad}:3: gateway.broker:") for e in errors)
    assert any(":6: readers.0.protocol" in e and "thingmagic-mercury" in e for e in errors)  # allowed values listed
    assert main(["config", "validate", str(bad)]) == 1


def test_power_beyond_the_region_limit_is_refused(tmp_path: Path) -> None:
    profile = tmp_path / "hot.yaml"
    profile.write_text("gateway: {id: dock-1}\nreaders:\n  - name: d3\n    protocol: thingmagic-mercury\n"
                       "    port: /dev/null\n    region: EU\n    antennas:\n"
                       "      - {port: 1, read_point: wh/d3, power_dbm: 33}\n")
    assert validate_file(profile) == [f"{profile}:8: readers.0.antennas.0.power_dbm: 33.0 dBm outside 5.0..30.0 dBm "
                                      f"allowed in region EU (865.6-867.6 MHz)"]


def test_every_antenna_out_of_its_region_is_reported_at_its_line_beside_other_errors(tmp_path: Path) -> None:
    profile = tmp_path / "hot.yaml"
    profile.write_text("gateway: {id: Dock_1, broker: 'mqtt://127.0.0.1:1883'}\nreaders:\n"
                       "  - name: d3\n    protocol: thingmagic-mercury\n    port: /dev/null\n    region: PRC\n"
                       "    antennas:\n      - {port: 1, read_point: wh/d3, power_dbm: 31}\n"
                       "      - {port: 2, read_point: wh/d3, power_dbm: 4}\n"
                       "  - name: d4\n    protocol: thingmagic-mercury\n    port: /dev/null\n"
                       "    antennas:\n      - {port: 1, read_point: wh d4, power_dbm: 40}\n")
    assert validate_file(profile) == [
        f"{profile}:1: gateway.id: 'Dock_1' is not 1 to 64 of a-z, 0-9 and -",
        f"{profile}:8: readers.0.antennas.0.power_dbm: 31.0 dBm outside 5.0..30.0 dBm allowed in region PRC "
        f"(920.5-924.5 MHz)",
        f"{profile}:9: readers.0.antennas.1.power_dbm: 4.0 dBm outside 5.0..30.0 dBm allowed in region PRC "
        f"(920.5-924.5 MHz)",
        f"{profile}:14: readers.1.antennas.0.read_point: 'wh d4' is not SITE/DOOR, each 1 to 64 of A-Z, a-z, 0-9, "
        f"'.', '_' and '-'",
        f"{profile}:14: readers.1.antennas.0.power_dbm: 40.0 dBm outside 5.0..30.0 dBm allowed in region EU "
        f"(865.6-867.6 MHz)"]


def test_the_files_a_profile_names_are_checked_unless_asked_not_to(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("")
    profile = tmp_path / "files.yaml"
    profile.write_text(f"gateway:\n  id: dock-1\n  password_file: {tmp_path}/missing.password\n"
                       f"  tls_ca_file: {tmp_path}\n  outbox: {tmp_path}/a-file/outbox.sqlite\n"
                       "gps: {port: /dev/null, vehicle: TRK-1}\n")
    assert validate_file(profile) == []  # what the gateway's loader and provisioning check
    assert main(["config", "validate", str(profile)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{profile}:3: gateway.password_file: {tmp_path}/missing.password: no such file",
        f"{profile}:4: gateway.tls_ca_file: {tmp_path}: not a file",
        f"{profile}:5: gateway.outbox: {tmp_path}/a-file/outbox.sqlite: {tmp_path}/a-file is not a folder"]
    assert main(["config", "validate", "--no-files", str(profile)]) == 0


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(REGIONS)), st.floats(-10, 40, allow_nan=False))
def test_read_power_is_accepted_exactly_within_the_region_limits(region: str, power: float) -> None:
    band, limit = REGIONS[region]
    try:
        Reader.model_validate({**_reader(27).model_dump(), "region": region,
                               "antennas": [{"port": 1, "read_point": "wh/d3", "power_dbm": power}]})
        accepted = True
    except ValueError as exc:
        accepted = False
        assert f"region {region} ({band} MHz)" in str(exc)
    assert accepted == (MIN_DBM <= power <= limit)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gets_a_list_of_problems_never_an_exception(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        errors = validate_file(path)
    assert errors and all(e.startswith(str(path)) for e in errors)  # no text is a whole valid profile


SIMULATORS = {"thingmagic-mercury": MercuryModule, "impinj-r2000": R2000Reader}


def _reader(power: float, protocol: str = "thingmagic-mercury") -> Reader:
    return Reader.model_validate({"name": "d3", "protocol": protocol, "port": "x", "region": "NA",
                                  "antennas": [{"port": 1, "read_point": "wh/d3", "power_dbm": power}]})


def _run_module(fd: int, stop: threading.Event, protocol: str = "thingmagic-mercury",
                module: MercuryModule | R2000Reader | None = None) -> MercuryModule | R2000Reader:
    """Serve a simulated reader on the master side; start it once the port is open (a master without
    an open slave reads EIO)."""
    module = module or SIMULATORS[protocol](fd)

    def serve() -> None:
        while not stop.is_set():
            try:
                module.handle(os.read(fd, 256))
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    return module


@pytest.mark.parametrize(("protocol", "expected"), [
    ("thingmagic-mercury", ["region NA", "protocol Gen2", "antenna 1", "read power 27.0 dBm"]),
    ("impinj-r2000", ["output power 27 dBm", "work antenna 1"]),
])
def test_apply_sends_the_profile_as_reader_commands_and_checks_each_answer(protocol: str, expected: list) -> None:
    fd, path = open_pty_pair()
    stop = threading.Event()
    with serial.Serial(path, timeout=0.2) as port:
        module = _run_module(fd, stop, protocol)
        done = apply_reader(_reader(27, protocol), port)
    stop.set()
    os.close(fd)
    assert done == expected
    assert len(module.received) == len(commands(_reader(27, protocol)))


def test_a_refused_setting_is_a_clear_error() -> None:
    fd, path = open_pty_pair()
    stop = threading.Event()
    reader = _reader(27).model_copy(update={"antennas": [_reader(27).antennas[0].model_copy(
        update={"power_dbm": 31.5})]})  # slips past validation: the module itself refuses it
    with serial.Serial(path, timeout=0.2) as port, pytest.raises(ModuleError, match="invalid parameter"):
        _run_module(fd, stop)
        apply_reader(reader, port)
    stop.set()
    os.close(fd)


def test_a_refusal_is_the_readers_own_error() -> None:
    """An R2000 with two ports asked for antenna 4: its own error, in its own words."""
    fd, path = open_pty_pair()
    stop = threading.Event()
    reader = Reader.model_validate({**_reader(27, "impinj-r2000").model_dump(),
                                    "antennas": [{"port": 4, "read_point": "wh/d3", "power_dbm": 27}]})
    with serial.Serial(path, timeout=0.2) as port, pytest.raises(ReaderError, match="0x74 with 0x3B: invalid antenna"):
        _run_module(fd, stop, module=R2000Reader(fd, antennas=2))
        apply_reader(reader, port)
    stop.set()
    os.close(fd)


def test_config_apply_reports_a_refusal_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fd, path = open_pty_pair()
    stop = threading.Event()
    profile = tmp_path / "gate.yaml"
    profile.write_text(f"gateway: {{id: dock-1}}\nreaders:\n  - name: d3\n    protocol: impinj-r2000\n"
                       f"    port: {path}\n    antennas:\n      - {{port: 4, read_point: wh/d3, power_dbm: 27}}\n")
    held = os.open(path, os.O_RDWR | os.O_NOCTTY)  # the port stays open while the CLI opens it on its own
    _run_module(fd, stop, module=R2000Reader(fd, antennas=2))
    assert main(["config", "apply", str(profile)]) == 1
    stop.set()
    os.close(held)
    os.close(fd)
    assert capsys.readouterr().err.strip() == "error: d3: reader answered command 0x74 with 0x3B: invalid antenna"
