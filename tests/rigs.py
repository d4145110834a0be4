"""A gateway box for drills: the real `cargotrace gateway` process with a portal reader and a GPS receiver on
pseudo-terminals, its real SQLite outbox, and what that outbox says about what the gateway handed out."""

from __future__ import annotations

import os
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml

from device_drivers.simulators import drive, open_pty_pair, portal_passage
from tests.helpers import Processes, wait_for


def tags(start: int, count: int) -> list[str]:
    return [f"3074257BF7194E40{i:08X}" for i in range(start, start + count)]


def outbox_depth(path: Path) -> int:
    """Events in the outbox the broker has not acknowledged yet."""
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM events WHERE acked_at IS NULL").fetchone()[0]


def outbox_last_seq(path: Path) -> int:
    """The last seq the gateway ever gave out (SQLite keeps it for AUTOINCREMENT keys)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return row[0] if row else 0


class Box:
    """One gateway (`name` among `procs`) reading a portal door and a GPS receiver, publishing to `broker`
    (one URL or a list)."""

    def __init__(self, folder: Path, procs: Processes, broker: str | list[str], name: str = "gateway",
                 outbox: Path | None = None, keep_acked_s: float = 30.0) -> None:
        self.procs, self.name = procs, name
        self.gateway_id = f"drill-{uuid.uuid4().hex[:8]}"
        self.reader_fd, reader_port = open_pty_pair()
        self.gps_fd, gps_port = open_pty_pair()
        self.outbox = outbox or folder / f"{name}-outbox.sqlite"
        self.profile = folder / f"{name}.yaml"
        self.profile.write_text(yaml.safe_dump({
            "gateway": {"id": self.gateway_id, "broker": broker, "outbox": str(self.outbox),
                        "keep_acked_s": keep_acked_s, "smoothing": {"absent_s": 0.3}},
            "readers": [{"name": "door", "protocol": "thingmagic-mercury", "port": reader_port,
                         "antennas": [{"port": 1, "read_point": "wh-sh1/door-03", "side": "outer"},
                                      {"port": 2, "read_point": "wh-sh1/door-03", "side": "inner"}]}],
            "gps": {"port": gps_port, "vehicle": "TRK-042"}}))

    def start(self) -> None:
        log = self.procs.logs / f"{self.name}.log"
        opened = self.procs.log(self.name).count("door: open") if log.exists() else 0
        self.procs.start(self.name, "gateway", "--config", str(self.profile))
        wait_for(lambda: self.procs.log(self.name).count("door: open") > opened, timeout=30, what="the reader port")

    def pass_door(self, epcs: list[str]) -> None:
        for i in range(0, len(epcs), 50):
            os.write(self.reader_fd, portal_passage(epcs[i:i + 50], outer=1, inner=2, outward=True, reads_per_side=2))

    def drive(self, waypoints: list[tuple[float, float]]) -> None:
        for epoch in drive(waypoints, 80, start=datetime.now(UTC)):
            os.write(self.gps_fd, epoch)

    def last_acked(self) -> int:
        """The highest seq the broker acknowledged (of those the outbox still keeps)."""
        if not self.outbox.exists():
            return 0
        with sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True) as db:
            return db.execute("SELECT coalesce(max(seq), 0) FROM events WHERE acked_at IS NOT NULL").fetchone()[0]

    def close(self) -> None:
        os.close(self.reader_fd)
        os.close(self.gps_fd)
