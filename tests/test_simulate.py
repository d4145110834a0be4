"""`cargotrace simulate` (the compose stack's simulated gateway) publishes dock observations and truck
fixes under its own id, through a real gateway, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
from pathlib import Path

from launcher.embedded import free_port
from tests.helpers import Processes, Subscriber


def test_the_simulated_gateway_publishes_passages_and_fixes(mqtt_url: str, gateway_id: str, tmp_path: Path) -> None:
    subscriber = Subscriber(mqtt_url, f"cargotrace/v1/{gateway_id}/#")
    procs = Processes(dict(os.environ), tmp_path)
    procs.start("simulate", "simulate", "--gateway-id", gateway_id, "--broker", mqtt_url, "--site", "wh-sim",
                "--vehicle", "SIM-042", "--tags", "2", "--period", "0.5", "--data-dir", str(tmp_path / "sim"),
                "--metrics-listen", f"127.0.0.1:{free_port()}")
    try:
        observations = subscriber.wait_events("rfid", 4)  # two passages of two pallets
        fixes = subscriber.wait_events("gps", 2)
        procs.check_alive()
    finally:
        procs.stop()
        subscriber.close()
    assert {o["read_point"] for o in observations} == {"wh-sim/door-01"}
    assert {o["direction"] for o in observations[:4]} == {"out", "in"}  # out and in by turns
    assert len({o["epc"] for o in observations}) == len(observations)  # new pallets each time
    assert {f["vehicle"] for f in fixes} == {"SIM-042"}
    assert [p.returncode for _, p in procs.procs] == [0]
