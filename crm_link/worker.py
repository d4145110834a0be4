"""`cargotrace crm run`: correlate as soon as ingest announces a commit, and on a slow timer as a safety net.

Several of them share the work by partitions (crm_link/partitions.py); the holder of partition 0 also
sweeps for GPS silence and keeps the speed history."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import psycopg

from common.failures import describe
from common.metrics import Sample, serve
from common.settings import Settings
from common.stopping import stop_on_signals
from crm_link import history_job, outbox
from crm_link.correlate import apply_batch
from crm_link.metrics import database_samples
from crm_link.partitions import Claims
from crm_link.route_watch import sweep_gps_silence
from crm_link.thresholds import Thresholds
from storage.vocabulary import EVENTS_CHANNEL

log = logging.getLogger(__name__)
STOP_CHECK_S = 0.5
HISTORY_EVERY_S = 60.0  # the speed history and past trips: statistics, not the live feed
SWEEP_EVERY_S = 5.0  # GPS silence, looked for whenever caught up, and this often while behind


class CrmWorker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumed: Counter[str] = Counter()
        self.transitions = 0
        self.database_errors = 0
        self.database_ok = False

    def run(self, stop: threading.Event) -> None:
        s = self.settings
        metrics = (serve(s.crm_metrics_listen, self.samples, lambda: self.database_ok, "CARGOTRACE_CRM_METRICS_LISTEN")
                   if s.crm_metrics_listen else None)
        backoff = 0.5
        thresholds = Thresholds().overridden(s.exception_thresholds)
        try:
            while not stop.is_set():
                try:
                    # Named after the process, so an operator sees in pg_stat_activity which one holds what.
                    with psycopg.connect(s.database_url, autocommit=True) as listener, \
                            psycopg.connect(s.database_url, application_name=f"cargotrace crm {os.getpid()}") as conn:
                        listener.execute(f"LISTEN {EVENTS_CHANNEL}")
                        backoff, self.database_ok = 0.5, True
                        sweep_due = history_due = time.monotonic()
                        claims = Claims()
                        while not stop.is_set():
                            owned = claims.rebalance(conn)  # between batches: partitions change hands here
                            applied = apply_batch(conn, self.consumed, thresholds, owned)
                            self.transitions += applied or 0
                            if 0 in owned and (applied is None or time.monotonic() >= sweep_due):
                                # the whole fleet's chores: one process does them
                                self.transitions += sweep_gps_silence(conn, thresholds, datetime.now(UTC))
                                sweep_due = time.monotonic() + SWEEP_EVERY_S
                                if time.monotonic() >= history_due:
                                    history_job.refresh(conn)
                                    history_due = time.monotonic() + HISTORY_EVERY_S
                            if applied is None:
                                _wait(listener, s.crm_poll_seconds, stop)
                except psycopg.OperationalError as exc:
                    self.database_ok = False
                    self.database_errors += 1
                    log.warning("database unavailable: %s; retrying in %.1f s", describe(exc) or exc, backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 15.0)
        finally:
            if metrics:
                metrics.shutdown()

    def samples(self) -> list[Sample]:
        c = "cargotrace_crm_"
        out: list[Sample] = [(c + "events_total", {"kind": kind}, self.consumed[kind])
                             for kind in ("observation", "position")]
        out += [(c + "transitions_total", {}, self.transitions),
                (c + "database_errors_total", {}, self.database_errors)]
        try:  # a scrape of its own: the worker's connections stay in their transactions
            with psycopg.connect(self.settings.database_url, autocommit=True, connect_timeout=5) as conn:
                out += database_samples(conn)
            up = 1.0
        except psycopg.Error as exc:
            log.warning("metrics: database query failed: %s", exc)
            up = 0.0
        return [*out, (c + "database_up", {}, up)]


def run(settings: Settings, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    stop_on_signals(stop)
    sender = threading.Thread(target=outbox.run, args=(settings, stop), name="webhooks", daemon=True)
    sender.start()
    try:
        CrmWorker(settings).run(stop)
    finally:
        stop.set()
        sender.join()


def _wait(listener: psycopg.Connection, period: float, stop: threading.Event) -> None:
    """Until ingest's next commit, or the poll period (rows whose transaction was still running at
    the last pass are picked up then). Waits in short slices so a stop is seen promptly."""
    deadline = time.monotonic() + period
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        if next(listener.notifies(timeout=min(left, STOP_CHECK_S), stop_after=1), None) is not None:
            return
