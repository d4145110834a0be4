"""`make demo`'s command, `cargotrace up --demo`, as a new user runs it (embedded PostgreSQL and broker,
real gateways on simulated devices), at six times the pace: what it prints, and that it stops cleanly."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from launcher.embedded import free_port

STATUSES = ["pending", "loading", "loaded", "in_transit", "arrived", "delivered"]


class Demo:
    def __init__(self, data_dir: Path, port: int, *args: str) -> None:
        env = {**os.environ, "CARGOTRACE_DATA_DIR": str(data_dir), "CARGOTRACE_API_PORT": str(port)}
        for name in ("CARGOTRACE_DATABASE_URL", "CARGOTRACE_MQTT_URL"):
            env.pop(name, None)  # embedded services, as on a new machine
        self.proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", "up", "--demo", *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line.rstrip("\n")) for line in self.proc.stdout or ()],
                         daemon=True).start()

    def until(self, pattern: str, timeout: float = 120) -> str:
        while True:
            line = self.lines.get(timeout=timeout)
            self.seen.append(line)
            if re.search(pattern, line):
                return line

    def stop(self) -> int:
        """Ctrl-C pressed twice, as people do."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


def test_the_demo_shows_its_pages_and_the_shipment_from_pending_to_delivered(tmp_path: Path) -> None:
    port = free_port()
    demo = Demo(tmp_path / "var", port, "--fresh", "--pace", "6")
    try:
        demo.until(r"^cargotrace is up: API http://127\.0\.0\.1:\d+/docs")
        share = demo.until(r"^  share link ").split()[2]
        assert httpx.get(share, timeout=10).status_code == 200
        finished = demo.until(r"^demo finished: ")
    finally:
        code = demo.stop()
    assert code == 0
    assert f"  dispatcher console  http://127.0.0.1:{port}/console  (sign in with the dispatcher key)" in demo.seen
    ref = re.search(r"SO-\d{6}", finished).group()
    assert f"  customer page       http://127.0.0.1:{port}/track/{ref}  (sign in with the acme key)" in demo.seen
    assert [line.split(": ")[-1] for line in demo.seen if f"shipment {ref}: " in line] == STATUSES
    assert any(re.search(r"truck TRK-042 at 31\.\d+,121\.\d+: \d\.\d km from ACME Pudong DC", line)
               for line in demo.seen)
    assert re.fullmatch(rf"demo finished: {ref} delivered in 0 min \d+ s\. Ctrl-C stops everything; the demo's data "
                        rf"stays in {tmp_path}/var/ \(to start over: cargotrace up --demo --fresh\)", finished)
    again = Demo(tmp_path / "var", free_port(), "--fresh")
    try:
        assert again.until(r"^started fresh") == f"started fresh: removed {tmp_path}/var/"
        again.until(r"^cargotrace is up")
    finally:
        assert again.stop() == 0
