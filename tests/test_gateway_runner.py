"""The gateway end to end: reader and GPS bytes on pseudo-terminals → contract messages on the real broker."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml

from common.contract import GPS_SCHEMA, RFID_SCHEMA, STATE_SCHEMA, json_schema
from device_drivers.simulators import drive, open_pty_pair, portal_passage
from device_drivers.types import Fix
from firmware_configs import load_profile
from gateway.outbox import Outbox
from gateway.runner import Gateway
from tests.helpers import Subscriber, wait_for

EPCS = ["3074257BF7194E4000001A85", "3074257BF7194E4000001A86", "3074257BF7194E4000001A87"]


def write_profile(path: Path, gateway_id: str, mqtt_url: str, reader_port: str | None, gps_port: str | None) -> Path:
    profile: dict = {"gateway": {"id": gateway_id, "broker": mqtt_url, "outbox": str(path.parent / "outbox.sqlite"),
                                 "smoothing": {"absent_s": 0.3}}}
    if reader_port:
        profile["readers"] = [{"name": "door-03", "protocol": "thingmagic-mercury", "port": reader_port,
                               "antennas": [{"port": 1, "read_point": "wh-sh1/door-03", "side": "outer"},
                                            {"port": 2, "read_point": "wh-sh1/door-03", "side": "inner"}]}]
    if gps_port:
        profile["gps"] = {"port": gps_port, "vehicle": "TRK-042"}
    path.write_text(yaml.safe_dump(profile))
    return path


def test_reads_and_fixes_on_serial_ports_arrive_as_valid_contract_messages(
        tmp_path: Path, gateway_id: str, mqtt_url: str) -> None:
    reader_fd, reader_port = open_pty_pair()
    gps_fd, gps_port = open_pty_pair()
    profile = load_profile(write_profile(tmp_path / "gw.yaml", gateway_id, mqtt_url, reader_port, gps_port))
    sub = Subscriber(mqtt_url, f"cargotrace/v1/{gateway_id}/#")
    stop = threading.Event()
    gateway = Gateway(profile)
    thread = threading.Thread(target=gateway.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: gateway.publisher.devices == {"door-03": "up", "gps": "up"}, what="devices open")
        os.write(reader_fd, portal_passage(EPCS, outer=1, inner=2, outward=True))
        for epoch in drive([(31.2304, 121.4737), (31.2404, 121.4837)], speed_kmh=50, start=datetime.now(UTC)):
            os.write(gps_fd, epoch)
        rfid = sub.wait_events("rfid", 3)
        gps = sub.wait_events("gps", 5)
        # Received is not yet acknowledged: on a busy machine the broker's PUBACKs may still be on their way.
        wait_for(lambda: Outbox(profile.gateway.outbox).depth() == 0, what="the outbox drained by the broker's acks")
    finally:
        stop.set()
        thread.join(10)
        os.close(reader_fd)
        os.close(gps_fd)
    assert sorted(e["epc"] for e in rfid) == EPCS
    assert {(e["read_point"], e["direction"], e["reads"]) for e in rfid} == {("wh-sh1/door-03", "out", 6)}
    assert {e["vehicle"] for e in gps} == {"TRK-042"}
    seqs = [e["seq"] for e in rfid + gps]
    assert len(set(seqs)) == len(seqs)
    for message in sub.messages:
        body = json.loads(message.payload)
        schema = {"rfid": RFID_SCHEMA, "gps": GPS_SCHEMA, "state": STATE_SCHEMA}[message.topic.rsplit("/", 1)[1]]
        jsonschema.validate(body, json_schema(schema), format_checker=jsonschema.FormatChecker())
    states = [json.loads(m.payload)["state"] for m in sub.messages if m.topic.endswith("/state")]
    assert states[0] == "online" and states[-1] == "offline"
    sub.close()
    assert Outbox(profile.gateway.outbox).depth() == 0  # everything acknowledged left the outbox



def test_a_truck_gateway_reports_how_far_its_clock_is_off_gps_time(
        tmp_path: Path, gateway_id: str, mqtt_url: str, caplog: pytest.LogCaptureFixture) -> None:
    gateway = Gateway(load_profile(write_profile(tmp_path / "p.yaml", gateway_id, mqtt_url, None, "/dev/null")))
    gps_time = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    gateway._take("gps", Fix(ts=gps_time, lat=31.23, lon=121.47, speed_kmh=0.0), [], gps_time - timedelta(days=3))
    assert gateway.counters()["clock_offset_s"] == -3 * 86400
    assert ("cargotrace_gateway_clock_offset_seconds", {}, -3 * 86400) in gateway.samples()
    assert "clock is -259200 s off GPS time" in caplog.text
    gateway.outbox.close()
