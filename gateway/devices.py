"""Serial devices read in their own threads; a device that vanishes is reopened with backoff."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import serial

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0


class DeviceReader(threading.Thread):
    """Reads one serial port (device path or pyserial URL) into a decoder; puts (name, value) on a queue.

    Status changes are put as (name, "up" | "down").
    """

    def __init__(self, name: str, port: str, baud: int, make_decoder: Callable[[], Any],
                 out: queue.Queue[tuple[str, Any]], stop: threading.Event, on_open: bytes = b"") -> None:
        super().__init__(name=f"device-{name}", daemon=True)
        self.device, self.port, self.baud = name, port, baud
        self.make_decoder, self.out, self.stop_event, self.on_open = make_decoder, out, stop, on_open
        self.decoder: Any = None
        self.reopens = 0

    def run(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                port = serial.serial_for_url(self.port, baudrate=self.baud, timeout=0.2)
            except (serial.SerialException, OSError, ValueError) as exc:
                log.warning("%s: cannot open %s: %s (retry in %.1f s)", self.device, self.port, exc, backoff)
                self.out.put((self.device, "down"))
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 0.5
            log.info("%s: open %s", self.device, self.port)
            self.decoder = self.make_decoder()
            self.out.put((self.device, "up"))
            try:
                if self.on_open:
                    port.write(self.on_open)
                while not self.stop_event.is_set():
                    data = port.read(max(1, port.in_waiting))
                    for value in self.decoder.feed(data) if data else ():
                        self.out.put((self.device, value))
            except (serial.SerialException, OSError) as exc:
                log.warning("%s: device lost: %s", self.device, exc)
                self.reopens += 1
                self.out.put((self.device, "down"))
            finally:
                port.close()
