"""The central services as a benchmark runs them: `cargotrace ingest`, N × `cargotrace crm run` and `cargotrace api`
on one database, each a process of its own with its log and its metrics port; what they count, and the CPU
time each process (and the database's backends serving them) used."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psycopg

from launcher.embedded import free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of proc(5)


def backends(admin: str, database: str) -> dict[int, float]:
    """The database's server processes (its backends) and their CPU time so far."""
    with psycopg.connect(admin, autocommit=True) as conn:
        pids = [pid for (pid,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))]
    return {pid: cpu_seconds(pid) for pid in pids}


def metric(text: str, name: str) -> float:
    """The sum of a metric's samples over its labels, in Prometheus text."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name)] in "{ ")


class Cpu:
    """CPU seconds the named processes and the database's backends used since this was made. A backend that
    ended meanwhile is not counted: the services' own connections live as long as they do."""

    def __init__(self, pids: dict[str, int], admin: str, database: str) -> None:
        self.pids, self.admin, self.database = pids, admin, database
        self.start = self._now()

    def _now(self) -> tuple[dict[str, float], dict[int, float]]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}, backends(self.admin, self.database)

    def used(self) -> dict[str, float]:
        (own0, pg0), (own1, pg1) = self.start, self._now()
        used = {name: own1[name] - own0[name] for name in self.pids}
        used["postgres"] = sum(seconds - pg0.get(pid, 0.0) for pid, seconds in pg1.items())
        return used


class Stack:
    """The services' processes, started at once; `wait_ready` before use, `stop` at the end."""

    def __init__(self, database_url: str, mqtt_url: str, correlators: int, logs: Path) -> None:
        self.logs, self.url = logs, database_url
        self.api_port, self.ingest_metrics = free_port(), f"127.0.0.1:{free_port()}"
        self.crm_metrics = [f"127.0.0.1:{free_port()}" for _ in range(correlators)]
        env = {**os.environ, "CARGOTRACE_DATABASE_URL": database_url, "CARGOTRACE_MQTT_URL": mqtt_url,
               # the shipped broker ties client ids to user names; a session of this run only
               "CARGOTRACE_INGEST_CLIENT_ID": urlparse(mqtt_url).username or "cargotrace-ingest",
               "CARGOTRACE_INGEST_SESSION_EXPIRY_S": "0", "CARGOTRACE_INGEST_METRICS_LISTEN": self.ingest_metrics,
               "CARGOTRACE_API_RATE_LIMIT_PER_MINUTE": "0"}  # the probe opens many streams with one key
        self.procs = {"ingest": self._start("ingest", env, "ingest")}
        for n, listen in enumerate(self.crm_metrics, 1):
            self.procs[f"crm-{n}"] = self._start(f"crm-{n}", {**env, "CARGOTRACE_CRM_METRICS_LISTEN": listen},
                                                 "crm", "run")
        self.procs["api"] = self._start("api", env, "api", "--port", str(self.api_port))

    def _start(self, name: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            return subprocess.Popen([sys.executable, "-m", "launcher.cli", *args], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Ingest subscribed, every correlator connected to the database, the API listening for changes."""
        checks = {"ingest": lambda: b"subscribed" in (self.logs / "ingest.log").read_bytes(),
                  "api": lambda: _answers(f"{self.api}/healthz", lambda r: r.json().get("live") is True)}
        checks |= {f"crm-{n}": lambda listen=listen: _answers(f"http://{listen}/healthz", lambda r: r.is_success)
                   for n, listen in enumerate(self.crm_metrics, 1)}
        deadline = time.monotonic() + timeout
        waiting = set(checks)
        while waiting:
            self.check_alive()
            waiting = {name for name in waiting if not checks[name]()}
            if waiting and time.monotonic() > deadline:
                raise SystemExit(f"{', '.join(sorted(waiting))} not ready after {timeout:.0f} s: see {self.logs}")
            time.sleep(0.1)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text()[-2000:]
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{tail}")

    def committed(self) -> int:
        """Rows ingest committed (fixes and observations)."""
        text = httpx.get(f"http://{self.ingest_metrics}/metrics", timeout=10).text
        return round(metric(text, "cargotrace_ingest_positions_total") +
                     metric(text, "cargotrace_ingest_observations_total"))

    def applied(self) -> int:
        """Events the correlators applied, all of them together (each counts the ones it consumed)."""
        return round(sum(metric(httpx.get(f"http://{listen}/metrics", timeout=10).text, "cargotrace_crm_events_total")
                         for listen in self.crm_metrics))

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:  # a correlator far behind stops only once it caught up: not worth waiting for
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _answers(url: str, good: Callable[[httpx.Response], bool]) -> bool:
    try:
        return good(httpx.get(url, timeout=5))
    except (httpx.HTTPError, ValueError):  # not listening yet, or not its JSON yet
        return False
