"""systemd's notify protocol (sd_notify): READY once running, WATCHDOG=1 while the main loop turns.

With `Type=notify` and `WatchdogSec=` in the unit, systemd restarts a gateway whose loop stops
turning (a hung device read, a deadlock) even though the process is still alive. Outside systemd
($NOTIFY_SOCKET unset) every call is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Mapping


class Watchdog:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        # An address starting with "@" is in the abstract namespace (a leading NUL byte).
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        # Pet twice per period, as sd_watchdog_enabled(3) advises.
        self.period = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None
        self.last = 0.0

    def notify(self, message: str) -> None:
        if not self.address:
            return
        # OSError: systemd gone (shutdown), nothing to tell
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
            sock.sendto(message.encode(), self.address)

    def ready(self) -> None:
        self.notify("READY=1")

    def alive(self) -> None:
        """Called on every turn of the loop; sends at most one WATCHDOG=1 per half period."""
        now = time.monotonic()
        if self.period is not None and now - self.last >= self.period:
            self.last = now
            self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
