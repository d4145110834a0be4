"""A reader whose cable is pulled and plugged back, and that sends garbage between frames: the
gateway says which device is down, reopens it, keeps reading, and counts the garbage."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from pathlib import Path

import yaml

from device_drivers.rfid import mercury as enc
from firmware_configs import load_profile
from gateway.runner import Gateway
from launcher.embedded import free_port
from tests.helpers import Subscriber, wait_for


def metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line}


def test_unplugged_reader_is_reported_reopened_and_garbage_is_counted(tmp_path: Path, gateway_id: str,
                                                                       mqtt_url: str) -> None:
    # The reader sits behind a TCP serial server (pyserial socket://): closing the connection is
    # pulling the cable, accepting the next one is plugging it back.
    device = socket.create_server(("127.0.0.1", 0))
    metrics_port = free_port()
    profile_file = tmp_path / "gw.yaml"
    profile_file.write_text(yaml.safe_dump({
        "gateway": {"id": gateway_id, "broker": mqtt_url, "outbox": str(tmp_path / "o.sqlite"),
                    "metrics_listen": f"127.0.0.1:{metrics_port}", "smoothing": {"absent_s": 0.2}},
        "readers": [{"name": "door-03", "protocol": "thingmagic-mercury",
                     "port": f"socket://127.0.0.1:{device.getsockname()[1]}",
                     "antennas": [{"port": 1, "read_point": "wh-sh1/door-03"}]}]}))
    sub = Subscriber(mqtt_url, f"cargotrace/v1/{gateway_id}/#")
    stop = threading.Event()
    gateway = Gateway(load_profile(profile_file))
    thread = threading.Thread(target=gateway.run, args=(stop,))
    thread.start()
    try:
        cable, _ = device.accept()
        # Opening a port discards what arrived before: send once the gateway has it open.
        wait_for(lambda: metrics(metrics_port).get('cargotrace_gateway_device_up{device="door-03"}') == 1)
        frame = enc.tag_record_frame("3074257BF7194E4000000001", 1, -50)
        cable.sendall(b"\x00\x13garbage\xff\xff" + frame + b"noise" + frame)
        sub.wait_events("rfid", 1)
        cable.close()  # pulled
        wait_for(lambda: any(json.loads(m.payload).get("devices", {}).get("door-03") == "down"
                             for m in sub.messages if m.topic.endswith("/state")), what="state naming the device")
        assert metrics(metrics_port)['cargotrace_gateway_device_up{device="door-03"}'] == 0
        cable, _ = device.accept()  # plugged back: the gateway reopens the port by itself
        wait_for(lambda: metrics(metrics_port)['cargotrace_gateway_device_up{device="door-03"}'] == 1)
        cable.sendall(enc.tag_record_frame("3074257BF7194E4000000002", 1, -50) * 2)
        events = sub.wait_events("rfid", 2)
        seen = metrics(metrics_port)
        cable.close()
    finally:
        stop.set()
        thread.join(10)
        device.close()
        sub.close()
    assert [e["epc"] for e in events] == ["3074257BF7194E4000000001", "3074257BF7194E4000000002"]
    assert seen['cargotrace_gateway_device_up{device="door-03"}'] == 1
    assert seen['cargotrace_gateway_device_reopens_total{device="door-03"}'] >= 1
    assert seen["cargotrace_gateway_raw_reads_total"] == 4
    assert seen["cargotrace_gateway_observations_total"] == 2
