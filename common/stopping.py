"""Stopping a process on SIGINT or SIGTERM through the `threading.Event` its loops watch."""

from __future__ import annotations

import signal
import threading


def stop_on_signals(stop: threading.Event) -> None:
    """SIGINT and SIGTERM set `stop` (from the main thread only; elsewhere nothing is installed).

    The handler runs in the main thread, possibly inside `stop.set()` or `stop.wait()` holding the event's
    lock: a second signal then (Ctrl-C twice, or a supervisor's SIGTERM after a SIGINT) calling `set()`
    again would block on that lock forever. So the event is set once and later signals do nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(*_: object) -> None:
        if not stop.is_set():
            stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
