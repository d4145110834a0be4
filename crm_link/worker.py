"""`cargotrace crm run`: correlate as soon as ingest announces a commit, and on a slow timer as a safety net.

Several of them share the work by partitions (crm_link/partitions.py); the holder of partition 0 also
sweeps for GPS silence. One of them keeps the fleet's driving history, in a thread with a connection of
its own, so a long fold never holds up the status feed."""

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
from crm_link.correlate import CORRELATOR_APP, HISTORY_APP, apply_batch
from crm_link.metrics import database_samples
from crm_link.partitions import Claims
from crm_link.route_watch import sweep_gps_silence
from crm_link.thresholds import Thresholds
from storage.vocabulary import EVENTS_CHANNEL

log = logging.getLogger(__name__)
STOP_CHECK_S = 0.5
HISTORY_EVERY_S = 60.0  # the speed history and past trips: statistics, not the live feed
HISTORY_KEEPER_LOCK = 0x63747203  # advisory lock key space (crm_link/partitions.py has the others)
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
                            psycopg.connect(s.database_url, application_name=f"{CORRELATOR_APP} {os.getpid()}") as conn:
                        listener.execute(f"LISTEN {EVENTS_CHANNEL}")
                        backoff, self.database_ok = 0.5, True
                        sweep_due, claims = time.monotonic(), Claims()
                        while not stop.is_set():
                            owned = claims.rebalance(conn)  # between batches: partitions change hands here
                            applied = apply_batch(conn, self.consumed, thresholds, owned)
                            self.transitions += applied or 0
                            if 0 in owned and (applied is None or time.monotonic() >= sweep_due):
                                # a chore of the whole fleet: one process does it
                                self.transitions += sweep_gps_silence(conn, thresholds, datetime.now(UTC))
                                sweep_due = time.monotonic() + SWEEP_EVERY_S
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


def keep_history(settings: Settings, stop: threading.Event) -> None:
    """The speed history, past trips and calibration, refreshed every HISTORY_EVERY_S by the one process
    that holds the keeper's advisory lock (another takes it when that one's connection ends)."""
    backoff = 0.5
    while not stop.is_set():
        try:
            with psycopg.connect(settings.database_url, autocommit=True,
                                 application_name=f"{HISTORY_APP} {os.getpid()}") as conn:
                keeper, backoff = False, 0.5
                while not stop.is_set():
                    keeper = keeper or conn.execute("SELECT pg_try_advisory_lock(%s, 0)",
                                                    (HISTORY_KEEPER_LOCK,)).fetchone()[0]
                    if keeper:
                        history_job.refresh(conn)
                    stop.wait(HISTORY_EVERY_S)
        except psycopg.OperationalError as exc:
            log.warning("speed history: database unavailable: %s; retrying in %.1f s", describe(exc) or exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 15.0)


def run(settings: Settings, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    stop_on_signals(stop)
    helpers = [threading.Thread(target=outbox.run, args=(settings, stop), name="webhooks", daemon=True),
               threading.Thread(target=keep_history, args=(settings, stop), name="history", daemon=True)]
    for thread in helpers:
        thread.start()
    try:
        CrmWorker(settings).run(stop)
    finally:
        stop.set()
        for thread in helpers:
            thread.join()


def _wait(listener: psycopg.Connection, period: float, stop: threading.Event) -> None:
    """Until ingest's next commit, or the poll period (rows whose transaction was still running at
    the last pass are picked up then). Waits in short slices so a stop is seen promptly."""
    deadline = time.monotonic() + period
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        if next(listener.notifies(timeout=min(left, STOP_CHECK_S), stop_after=1), None) is not None:
            return
