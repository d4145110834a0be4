"""The durable outbox: every event gets the gateway's next `seq` and is on disk before anything else
happens to it; it leaves `keep_acked_s` after the broker acknowledged it. Until then it is sent again
after every reconnect: a broker that crashes before saving what it acknowledged (Mosquitto saves
every few seconds) gets it back when it restarts, and ingest stores each event once.

SQLite in WAL mode. `seq` is an AUTOINCREMENT key, so it only grows, across restarts and SIGKILL,
and is never reused after deletes.

Full policy (at `max_events`): stationary GPS fixes are thinned first (the oldest of them go);
if the outbox is still full, new GPS fixes are refused and counted, cargo observations are always
kept (the disk bound is exceeded rather than lose cargo), and `alarm` is raised.

A disk that refuses a write (full, or failing) is not a crash: the transaction is rolled back and
`StorageRefused` raised, so the caller can hold the events and try again; an acknowledgement that
cannot be marked is kept and marked later (until then the event is sent again after a reconnect,
which is harmless downstream).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,           -- rfid | gps
    body       TEXT    NOT NULL,           -- the event's JSON without seq
    stationary INTEGER NOT NULL DEFAULT 0, -- first to go when the outbox is full
    created    REAL    NOT NULL,
    acked_at   REAL                        -- when the broker acknowledged it; NULL: not yet
);
"""
INSERT = "INSERT INTO events (kind, body, stationary, created) VALUES (?,?,?,?)"
# Outboxes made before acked_at existed get the column (NULL: nothing acknowledged is kept there).
_ACKED_AT = "ALTER TABLE events ADD COLUMN acked_at REAL"


class StorageRefused(Exception):
    """The outbox's disk refused a write: nothing of the call was stored."""


def _refused_by_storage(exc: sqlite3.Error) -> bool:
    """SQLITE_FULL, or an I/O error (whose extended codes share the primary code's low byte)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    kind: str
    event: dict[str, Any]  # with its seq
    size: int


class Outbox:
    def __init__(self, path: str | Path, max_events: int = 2_000_000, keep_acked_s: float = 30.0) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an appended event survives power loss too
        self._db.executescript(_SCHEMA)
        if "acked_at" not in {c[1] for c in self._db.execute("PRAGMA table_info(events)")}:
            self._db.execute(_ACKED_AT)
        self._lock = threading.Lock()
        self.max_events = max_events
        self.keep_acked_s = keep_acked_s
        self.alarm = False
        self.refused = 0
        self.thinned = 0
        self.storage_refused = False  # the last write was refused by the disk
        self._unacked: list[int] = []  # acknowledged, not yet marked: the disk refused the write

    def append_many(self, items: list[tuple[str, dict[str, Any], bool]]) -> list[int]:
        """Store (kind, event, stationary) items in one transaction; returns their seqs (0 = refused)."""
        seqs: list[int] = []
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                room = self.max_events - self._count()
                if room >= len(items):  # the common case: one statement, consecutive seqs (AUTOINCREMENT)
                    self._db.executemany(INSERT, [(kind, json.dumps(event, separators=(",", ":")), int(stationary),
                                                   now) for kind, event, stationary in items])
                    last = self._db.execute("SELECT last_insert_rowid()").fetchone()[0]
                    seqs, items = list(range(last - len(items) + 1, last + 1)), []
                for kind, event, stationary in items:
                    if room <= 0:
                        room += self._forget_acked(0.0) or self._thin_stationary()
                    if room <= 0 and kind != "rfid":
                        self.refused += 1
                        self.alarm = True
                        seqs.append(0)
                        continue
                    self.alarm = self.alarm or room <= 0
                    cur = self._db.execute(INSERT, (kind, json.dumps(event, separators=(",", ":")), int(stationary),
                                                    now))
                    seqs.append(cur.lastrowid or 0)
                    room -= 1
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()
                if _refused_by_storage(exc):
                    self.storage_refused = True
                    raise StorageRefused(str(exc)) from None
                raise
            except BaseException:
                self._rollback()
                raise
            self.storage_refused = False
        return seqs

    def _rollback(self) -> None:
        # After SQLITE_FULL SQLite may have rolled the transaction back itself already.
        with contextlib.suppress(sqlite3.OperationalError):
            self._db.execute("ROLLBACK")

    def append(self, kind: str, event: dict[str, Any], stationary: bool = False) -> int:
        return self.append_many([(kind, event, stationary)])[0]

    def _count(self) -> int:
        return self._db.execute("SELECT count(*) FROM events").fetchone()[0]

    def _forget_acked(self, older_than_s: float) -> int:
        cur = self._db.execute("DELETE FROM events WHERE acked_at <= ?", (time.time() - older_than_s,))
        return cur.rowcount

    def _thin_stationary(self, n: int = 100) -> int:
        cur = self._db.execute("DELETE FROM events WHERE seq IN "
                               "(SELECT seq FROM events WHERE stationary = 1 ORDER BY seq LIMIT ?)", (n,))
        self.thinned += cur.rowcount
        return cur.rowcount

    def batch(self, after_seq: int, max_events: int, max_bytes: int) -> list[Pending]:
        """The oldest events after `after_seq` (acknowledged ones still kept included), all of one kind,
        bounded by count and bytes."""
        with self._lock:
            rows = self._db.execute("SELECT seq, kind, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (after_seq, max_events)).fetchall()
        out: list[Pending] = []
        total = 0
        for seq, kind, body in rows:
            if out and (kind != out[0].kind or total + len(body) > max_bytes):
                break
            total += len(body) + 12
            out.append(Pending(seq, kind, {"seq": seq, **json.loads(body)}, len(body)))
        return out

    def ack(self, seqs: list[int]) -> None:
        with self._lock:
            seqs = self._unacked + seqs
            try:
                self._db.execute("BEGIN")
                now = time.time()
                self._db.executemany("UPDATE events SET acked_at = ? WHERE seq = ?", [(now, s) for s in seqs])
                self._forget_acked(self.keep_acked_s)
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()
                if not _refused_by_storage(exc):
                    raise
                self.storage_refused = True
                self._unacked = seqs  # deleted with the next acknowledgement
                return
            self._unacked = []
            if self.alarm and self._count() < self.max_events:
                self.alarm = False

    def depth(self) -> int:
        """Events the broker has not acknowledged yet."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM events WHERE acked_at IS NULL").fetchone()[0]

    def oldest_age_s(self) -> float:
        with self._lock:
            (created,) = self._db.execute("SELECT min(created) FROM events WHERE acked_at IS NULL").fetchone()
        return time.time() - created if created else 0.0

    def close(self) -> None:
        with self._lock:
            self._db.close()
