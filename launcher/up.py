"""`cargotrace up`: the whole system in one process tree, for a laptop or a demo.

Each service runs as its own child process (exactly as in production), supervised here: if one
dies the others are stopped too, and Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from common.failures import Failure, listening_socket
from common.settings import Settings
from common.stopping import stop_on_signals
from launcher.embedded import embedded_broker, embedded_database
from storage.migrate import migrate


class Supervisor:
    """Starts child processes and stops them all together."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def start(self, name: str, *args: str) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        cmd = [sys.executable, "-m", "launcher.cli", *args]
        self.children[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, base: str) -> bool:
        """Until the API serves (True) or Ctrl-C (False); a child that exits meanwhile fails `up` with its
        own last line."""
        while not _serves(base):
            for name, proc in self.children.items():
                if proc.poll() is not None:
                    raise Failure(f"{name} did not start: {self.last_line(name)} (log: {self.log_dir}/{name}.log)")
            if self.stopping.wait(0.1):
                return False
        return True

    def last_line(self, name: str) -> str:
        lines = (self.log_dir / f"{name}.log").read_text(errors="replace").strip().splitlines()
        return lines[-1].removeprefix("error: ") if lines else "no output"

    def wait(self) -> str | None:
        """Block until Ctrl-C/SIGTERM (None) or until a child exits (its name)."""
        while not self.stopping.wait(0.5):
            for name, proc in self.children.items():
                if proc.poll() is not None:
                    return name
        return None

    def stop(self) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.children.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _serves(base: str) -> bool:
    try:
        urllib.request.urlopen(f"{base}/healthz", timeout=5).close()
    except urllib.error.HTTPError:
        return True  # 503: it serves, the database does not answer yet
    except OSError:
        return False
    return True


def up(settings: Settings, demo: bool = False, fresh: bool = False, pace: float = 1.0) -> int:
    data_dir = Path(settings.data_dir)
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)  # the embedded database, the broker's store, logs and the demo's outboxes
        print(f"started fresh: removed {data_dir}/")
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    # Before anything starts: another server there would answer in the API's place.
    listening_socket(settings.api_host, settings.api_port, "CARGOTRACE_API_PORT").close()
    with ExitStack() as stack:
        database_url = settings.database_url or stack.enter_context(embedded_database(data_dir))
        mqtt_url = settings.mqtt_url or stack.enter_context(embedded_broker(data_dir))
        migrate(database_url)
        env = {**os.environ, "CARGOTRACE_DATABASE_URL": database_url, "CARGOTRACE_MQTT_URL": mqtt_url}
        if not settings.mqtt_url:
            env["CARGOTRACE_INGEST_MQTT_V5"] = "false"  # amqtt speaks MQTT 3.1.1 only
        supervisor = Supervisor(env, log_dir)
        stop_on_signals(supervisor.stopping)
        try:
            supervisor.start("ingest", "ingest")
            supervisor.start("crm", "crm", "run")
            supervisor.start("api", "api", "--host", settings.api_host, "--port", str(settings.api_port))
            base = f"http://{settings.api_host}:{settings.api_port}"
            if not supervisor.wait_ready(base):
                return 0
            print(f"cargotrace is up: API {base}/docs  health {base}/healthz  logs {log_dir}/")
            if demo:
                from launcher.demo import start_demo

                stack.enter_context(start_demo(database_url, mqtt_url, supervisor, base, pace))
            print("Ctrl-C stops everything.", flush=True)
            failed = supervisor.wait()
            if failed:
                print(f"error: {failed} exited: {supervisor.last_line(failed)} (log: {log_dir}/{failed}.log)",
                      file=sys.stderr)
                return 1
            return 0
        finally:
            supervisor.stop()
