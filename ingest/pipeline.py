"""What every ingest worker does between its broker and the database, whichever broker it reads:
messages → validated rows in a batch → one committed transaction (retried while the database is away)
→ counters. The broker side (what is received, and acknowledged after the commit) is the worker's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import psycopg

from common.failures import describe
from common.metrics import Sample
from common.settings import Settings
from ingest.validate import Rejected, parse
from ingest.writer import Accepted, Batch, Dead, Writer, Written

log = logging.getLogger(__name__)
MAX_DB_BACKOFF_S = 15.0
PREFIX = "cargotrace_ingest_"


class Window:
    """When a batch is complete: it holds `ingest_batch_events`, or `ingest_batch_seconds` have passed since
    its first message."""

    def __init__(self, settings: Settings) -> None:
        self.limit, self.seconds = settings.ingest_batch_events, settings.ingest_batch_seconds
        self.events = 0
        self.deadline: float | None = None

    def wait(self) -> float:
        """How long to wait for the next message; 0 once the batch is complete."""
        if self.events >= self.limit:
            return 0.0
        if self.deadline is None:
            return 0.5  # nothing yet: wait in short steps, so that a stop is seen
        return max(0.0, self.deadline - time.monotonic())

    def add(self, events: int) -> None:
        self.deadline = self.deadline or time.monotonic() + self.seconds
        self.events += events

    @property
    def started(self) -> bool:
        return self.deadline is not None


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counters: Counter[str] = Counter()
        self.database_ok = True
        self.last_commit = time.monotonic()
        self._conn: psycopg.Connection | None = None
        self._writer: Writer | None = None

    def add(self, batch: Batch, topic: str, payload: bytes, retained: bool = False) -> int:
        """Validate one message into the batch (rows, or a dead letter); returns the events it counts for."""
        s = self.settings
        try:
            rows = parse(topic, payload, s.ingest_max_message_bytes, max_ahead=timedelta(seconds=s.ingest_max_ahead_s))
        except Rejected as exc:
            self.counters[f"rejected: {exc.reason}"] += 1
            batch.dead.append(Dead(topic, payload, str(exc), retained=retained))
            return 1
        batch.accepted.append(Accepted(topic, payload, rows))
        for _, reason in rows.quarantined:
            self.counters[f"quarantined: {reason.split(':', 1)[0]}"] += 1
        return len(rows.observations) + len(rows.positions) + len(rows.states) + len(rows.quarantined)

    def write(self, batch: Batch, messages: int, stop: threading.Event,
              waiting: Callable[[], None] = lambda: None) -> Written | None:
        """Commit the batch, retrying with backoff on a new connection while the database is away (`waiting`
        is called at each retry); None when stopped first: then nothing may be acknowledged."""
        backoff = 0.5
        while True:
            try:
                if self._writer is None:
                    self._conn = psycopg.connect(self.settings.database_url)  # type: ignore[arg-type]
                    self._writer = Writer(self._conn)
                written = self._writer.write(batch)
                self.database_ok = True
                break
            except psycopg.OperationalError as exc:
                log.warning("database unavailable: %s; retrying in %.1f s", describe(exc) or exc, backoff)
                self.counters["database errors"] += 1
                self.database_ok = False
                self.close()
                waiting()
                if stop.wait(backoff):
                    return None
                backoff = min(backoff * 2, MAX_DB_BACKOFF_S)
        self.last_commit = time.monotonic()
        self.counters["messages"] += messages
        self.counters["observations"] += written.observations
        self.counters["positions"] += written.positions
        if written.unstorable:
            self.counters["rejected: unstorable"] += written.unstorable
        if written.conflicts:
            self.counters["rejected: conflicting duplicate"] += written.conflicts
        return written

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._writer = None

    def samples(self) -> list[Sample]:
        """The counters every worker reports; each adds what its broker tells (lag, queue, connection)."""
        counts = dict(self.counters)
        out: list[Sample] = [
            (PREFIX + "messages_total", {}, counts.get("messages", 0)),
            (PREFIX + "observations_total", {}, counts.get("observations", 0)),
            (PREFIX + "positions_total", {}, counts.get("positions", 0)),
            (PREFIX + "database_errors_total", {}, counts.get("database errors", 0)),
            (PREFIX + "redelivered_total", {}, sum(n for key, n in counts.items() if key.startswith("redelivered"))),
            (PREFIX + "last_commit_age_seconds", {}, time.monotonic() - self.last_commit),
        ]
        out += [(PREFIX + f"{kind}_total", {"reason": key.split(": ", 1)[1]}, n)
                for key, n in sorted(counts.items()) for kind in ("rejected", "quarantined")
                if key.startswith(f"{kind}: ")]
        return out
