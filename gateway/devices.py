"""Serial devices read in their own threads; a device that vanishes is reopened with backoff.

A port is a device path, a pyserial URL, or socket://HOST:PORT for a device on the network (a TCP serial
server, gpsd, an LLRP reader). The last is read as a plain socket, in chunks: pyserial's socket handler
reads byte by byte (its `in_waiting` is 0 or 1) and discards whatever arrived before its open returned.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import serial

from device_drivers import gpsd
from device_drivers.gps import NmeaDecoder
from device_drivers.gpsd import GpsdDecoder
from device_drivers.rfid import protocol
from device_drivers.rfid.protocol import CommandRefused, Conversation
from firmware_configs.profile import GatewayProfile, Reader

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0
READ_TIMEOUT_S = 0.2
CONNECT_TIMEOUT_S = 5.0


class _SerialPort:
    def __init__(self, url: str, baud: int) -> None:
        self.port = serial.serial_for_url(url, baudrate=baud, timeout=READ_TIMEOUT_S)

    def read(self) -> bytes:
        return bytes(self.port.read(max(1, self.port.in_waiting)))

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def close(self) -> None:
        self.port.close()


class _TcpPort:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"{url!r} is not socket://HOST:PORT")
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT_S)
        self.sock.settimeout(READ_TIMEOUT_S)

    def read(self) -> bytes:
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return b""
        if not data:
            raise ConnectionError("the device closed the connection")
        return data

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def open_port(url: str, baud: int) -> _SerialPort | _TcpPort:
    return _TcpPort(url) if url.startswith("socket://") else _SerialPort(url, baud)


GPS_DEVICE = "gps"


def device_readers(profile: GatewayProfile, out: queue.Queue[tuple[str, Any]],
                   stop: threading.Event) -> list[DeviceReader]:
    """A thread for each of the profile's readers and its GPS (not started)."""
    devices = [DeviceReader(r.name, r.port, r.baud, _reader_input(r), out, stop, on_open=protocol(r.protocol).start)
               for r in profile.readers]
    if profile.gps:
        gps = profile.gps
        decoder, on_open = (GpsdDecoder, gpsd.WATCH) if gps.source == "gpsd" else (NmeaDecoder, b"")
        devices.append(DeviceReader(GPS_DEVICE, gps.port, gps.baud, decoder, out, stop, on_open=on_open))
    return devices


def _reader_input(reader: Reader) -> Callable[[], Any]:
    """What reads a reader's connection each time it opens: a conversation for readers configured on
    every connection (LLRP), a stream decoder for the others."""
    spoken = protocol(reader.protocol)
    if spoken.converse is not None:
        converse, inventory = spoken.converse, reader.inventory()
        return lambda: converse(reader.name, inventory)
    return lambda: spoken.decoder(reader.name)


def _why(exc: Exception) -> str:
    """The cause alone: pyserial repeats the port and errno around the operating system's words."""
    number = getattr(exc, "errno", None)
    return os.strerror(number) if isinstance(number, int) and number > 0 else str(exc)


class DeviceReader(threading.Thread):
    """Reads one serial port (device path or pyserial URL) into a decoder; puts (name, value) on a queue.
    A decoder that is a `Conversation` (an LLRP reader) also writes: what it has to say is sent after
    each read, and what it raises (a refusal, silence) closes the port to start over.

    Status changes are put as (name, "up" | "down").
    """

    def __init__(self, name: str, port: str, baud: int, make_decoder: Callable[[], Any],
                 out: queue.Queue[tuple[str, Any]], stop: threading.Event, on_open: bytes = b"") -> None:
        super().__init__(name=f"device-{name}", daemon=True)
        self.device, self.port, self.baud = name, port, baud
        self.make_decoder, self.out, self.stop_event, self.on_open = make_decoder, out, stop, on_open
        self.decoder: Any = None
        self.reopens = 0
        self.last_error = ""  # why it last failed to open or was lost, for a check's verdict

    def run(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                port = open_port(self.port, self.baud)
            except (serial.SerialException, OSError, ValueError) as exc:
                self.last_error = f"cannot open {self.port}: {_why(exc)}"
                log.warning("%s: %s (retry in %.1f s)", self.device, self.last_error, backoff)
                self.out.put((self.device, "down"))
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            opened = time.monotonic()
            log.info("%s: open %s", self.device, self.port)
            self.decoder = self.make_decoder()
            self.out.put((self.device, "up"))
            talks = isinstance(self.decoder, Conversation)
            pause = 0.0
            try:
                if self.on_open:
                    port.write(self.on_open)
                while not self.stop_event.is_set():
                    data = port.read()
                    for value in self.decoder.feed(data) if data else ():
                        self.out.put((self.device, value))
                    if talks and (said := self.decoder.outgoing()):
                        port.write(said)
            except (serial.SerialException, OSError, CommandRefused) as exc:
                self.last_error = f"device lost: {exc}"
                log.warning("%s: %s", self.device, self.last_error)
                self.reopens += 1
                self.out.put((self.device, "down"))
                # One that fails again soon after opening (a reader refusing the profile) is retried ever
                # more slowly; one that had been working is retried at once.
                worked = time.monotonic() - opened > MAX_BACKOFF_S
                backoff = 0.5 if worked else min(backoff * 2, MAX_BACKOFF_S)
                pause = 0.0 if worked else backoff / 2
            finally:
                port.close()
            self.stop_event.wait(pause)
