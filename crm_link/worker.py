"""`cargotrace crm run`: correlate as soon as ingest announces a commit, and on a slow timer as a safety net."""

from __future__ import annotations

import logging
import signal
import threading
import time

import psycopg

from crm_link.correlate import process_pending
from tracking_api.ingest.writer import NOTIFY_CHANNEL
from tracking_api.settings import Settings

log = logging.getLogger(__name__)
STOP_CHECK_S = 0.5


def run(settings: Settings, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    backoff = 0.5
    while not stop.is_set():
        try:
            with psycopg.connect(settings.database_url, autocommit=True) as listener, \
                    psycopg.connect(settings.database_url) as conn:
                listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                backoff = 0.5
                while not stop.is_set():
                    process_pending(conn)
                    _wait(listener, settings.crm_poll_seconds, stop)
        except psycopg.OperationalError as exc:
            log.warning("database unavailable (%s); retrying in %.1f s", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 15.0)


def _wait(listener: psycopg.Connection, period: float, stop: threading.Event) -> None:
    """Until ingest's next commit, or the poll period (rows whose transaction was still running at
    the last pass are picked up then). Waits in short slices so a stop is seen promptly."""
    deadline = time.monotonic() + period
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        if next(listener.notifies(timeout=min(left, STOP_CHECK_S), stop_after=1), None) is not None:
            return
