"""A throw-away Mosquitto on a spare loopback port with the shipped settings (`deploy/mosquitto/cargotrace.d`),
for benchmarks and tests."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

from launcher.embedded import free_port, wait_for_port

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "cargotrace.d"
ACL = SHIPPED.parent / "cargotrace.acl"  # each gateway writes only its own topics
NO_LOSS = SHIPPED / "no-loss.conf"
IDENTITY = SHIPPED / "identity.conf"  # needs a user name on every connection: with authentication only


class Mosquitto:
    def __init__(self, folder: Path, extra: str = "", anonymous: bool = True) -> None:
        assert shutil.which("mosquitto"), "mosquitto is needed (make test installs it)"
        self.folder = folder
        self.port = free_port()
        (folder / "data").mkdir(parents=True, exist_ok=True)
        settings = NO_LOSS.read_text().replace("/var/lib/mosquitto/", f"{folder / 'data'}/")
        if not anonymous:
            settings += "\n" + IDENTITY.read_text()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"user root\nper_listener_settings false\nallow_anonymous {str(anonymous).lower()}\n"
                               f"listener {self.port} 127.0.0.1\n{settings}\n{extra}\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> Mosquitto:
        log = (self.folder / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM saves the persistence file; SIGKILL is a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15)
