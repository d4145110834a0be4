"""A throw-away PostgreSQL primary and streaming standby (`pg_basebackup -R`) on spare ports, for failover
drills: killing them disturbs no other test. The servers run as the `postgres` system user (PostgreSQL
refuses root) from Debian's binaries."""

from __future__ import annotations

import contextlib
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from launcher.embedded import free_port, wait_for_port
from tests.helpers import wait_for

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"
STANDBY_NAME = "standby1"


def _as_postgres(*command: str | Path, log: Path | None = None) -> None:
    out = log.open("ab") if log else subprocess.DEVNULL
    subprocess.run(["runuser", "-u", USER, "--", *map(str, command)], check=True, stdout=out,
                   stderr=subprocess.STDOUT if log else None)


def _parent(stat: Path) -> int | None:
    try:  # "pid (name) state ppid ...": the name may hold spaces, so read after its closing parenthesis
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None  # the process is gone


class Node:
    def __init__(self, folder: Path) -> None:
        self.data, self.port, self.log = folder / "data", free_port(), folder / "server.log"
        self.commands = folder / "commands.log"  # the server's own log is written by the postgres user

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        _as_postgres(BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                     "-o", f"-p {self.port} -k {self.data}", "start")
        wait_for_port(self.port)

    def kill(self) -> None:
        """kill -9 the postmaster and every process of it at once, as a crashed machine: no backend gets
        to finish a commit nor a WAL sender to send what is already flushed."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat")
                    if _parent(stat) == postmaster]
        for pid in (postmaster, *children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", USER, "--", str(BIN / "pg_ctl"), "-D", str(self.data), "-m",
                            "immediate", "stop"], capture_output=True)


class Pair:
    """Primary and standby; `synchronous`: every commit waits until the standby has flushed it."""

    def __init__(self, synchronous: bool, link_delay_s: float = 0.0) -> None:
        assert shutil.which("runuser") and (BIN / "pg_basebackup").exists(), "Debian's postgresql-15 is needed"
        # not under pytest's tmp_path: its root-only parents are closed to the postgres user
        self.folder = folder = Path(tempfile.mkdtemp(prefix="cargotrace-pg-"))
        self.synchronous = synchronous
        account = pwd.getpwnam(USER)
        os.chown(folder, account.pw_uid, account.pw_gid)
        for part in ("primary", "standby"):
            (folder / part).mkdir()
            os.chown(folder / part, account.pw_uid, account.pw_gid)
        self.primary, self.standby = Node(folder / "primary"), Node(folder / "standby")
        _as_postgres(BIN / "initdb", "-D", self.primary.data, "-U", USER, "--auth=trust", "-E", "UTF8",
                     log=self.primary.commands)
        settings = ["listen_addresses = '127.0.0.1'", "wal_level = replica", "max_wal_senders = 5",
                    "fsync = on", "shared_buffers = 64MB"]
        if synchronous:
            settings += [f"synchronous_standby_names = '{STANDBY_NAME}'", "synchronous_commit = on"]
        with (self.primary.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")
        with (self.primary.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        self.primary.start()
        # -R writes standby.signal and primary_conninfo (with the application name synchronous commit names)
        _as_postgres(BIN / "pg_basebackup", "-D", self.standby.data, "-R", "-X", "stream", "-c", "fast",
                     "-d", f"host=127.0.0.1 port={self.primary.port} user={USER} application_name={STANDBY_NAME}",
                     log=self.standby.commands)
        self.link = None
        if link_delay_s:  # the standby reaches the primary through a slow link
            self.link = SlowLink(self.primary.port, link_delay_s)
            with (self.standby.data / "postgresql.auto.conf").open("a") as conf:
                conf.write(f"primary_conninfo = 'host=127.0.0.1 port={self.link.port} user={USER} "
                           f"application_name={STANDBY_NAME}'\n")
        self.standby.start()
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            wait_for(lambda: conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
                     .fetchone()[0] == 1, timeout=60, what="the standby to stream")

    @property
    def url(self) -> str:
        """What every writer is given: both hosts, the one accepting writes is kept."""
        return (f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}/postgres"
                "?target_session_attrs=read-write&connect_timeout=3")

    def stop(self) -> None:
        self.primary.stop()
        self.standby.stop()
        if self.link:
            self.link.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class SlowLink:
    """A TCP relay on 127.0.0.1 that delivers every byte `delay_s` late in each direction, as a link to a
    standby in another building: replication then lags by that much. `cut` severs it, losing what is on
    the way, as when the primary's building loses power with its network."""

    def __init__(self, upstream_port: int, delay_s: float) -> None:
        self.delay_s, self.upstream_port = delay_s, upstream_port
        self.severed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                far = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                near.close()  # the primary is down: the standby retries
                continue
            for source, sink in ((near, far), (far, near)):
                chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()
                threading.Thread(target=self._read, args=(source, chunks), daemon=True).start()
                threading.Thread(target=self._write, args=(sink, chunks), daemon=True).start()

    def _read(self, source: socket.socket, chunks: queue.Queue[tuple[float, bytes]]) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            chunks.put((time.monotonic() + self.delay_s, data))
            if not data:
                return

    def _write(self, sink: socket.socket, chunks: queue.Queue[tuple[float, bytes]]) -> None:
        while True:
            due, data = chunks.get()
            time.sleep(max(0.0, due - time.monotonic()))  # the link's latency, not a wait for an event
            if self.severed.is_set():
                sink.close()
                return
            try:
                sink.sendall(data) if data else sink.shutdown(socket.SHUT_WR)
            except OSError:
                return
            if not data:
                return

    def cut(self) -> None:
        self.severed.set()
        self.listener.close()

    def close(self) -> None:
        self.cut()
