"""SIGINT and SIGTERM stop a process once; a second signal while the first is handled must not hang it
(it did: `cargotrace up` sent Ctrl-C twice deadlocked in `Event.set`)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from common.stopping import stop_on_signals


@pytest.fixture
def restored() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_second_signal_while_the_event_s_lock_is_held_returns_at_once(restored: None) -> None:
    stop = threading.Event()
    stop_on_signals(stop)
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    handler(signal.SIGINT, None)
    assert stop.is_set()
    returned = threading.Event()
    with stop._cond:  # as when the second signal lands inside the first handler's Event.set()
        threading.Thread(target=lambda: (handler(signal.SIGTERM, None), returned.set()), daemon=True).start()
        assert returned.wait(5), "the handler waited for the event's lock"


def test_outside_the_main_thread_nothing_is_installed(restored: None) -> None:
    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=stop_on_signals, args=(threading.Event(),))
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGINT) is before
