"""Simulated devices that write the real wire bytes: a Mercury reader module and a GPS receiver.

Used by tests and by `cargotrace up --demo` on pseudo-terminals, where a real gateway reads them
exactly as it reads hardware.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import os
import tty
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from device_drivers.rfid import mercury as m
from device_drivers.rfid import r2000

EARTH_RADIUS_M = 6_371_000.0


def open_pty_pair() -> tuple[int, str]:
    """(master fd the simulator writes to, path of the device a gateway opens)."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line discipline: bytes pass as they are
    path = os.ttyname(slave)
    os.close(slave)
    return master, path


def nmea(body: str) -> bytes:
    """A sentence with its checksum: '$' body '*' hh CR LF."""
    checksum = functools.reduce(operator.xor, body.encode(), 0)
    return f"${body}*{checksum:02X}\r\n".encode()


def _ddmm(value: float, positive: str, negative: str, degree_digits: int) -> tuple[str, str]:
    hemisphere = positive if value >= 0 else negative
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60
    return f"{degrees:0{degree_digits}d}{minutes:07.4f}", hemisphere


def fix_sentences(ts: datetime, lat: float, lon: float, speed_kmh: float, course_deg: float,
                  sats: int = 9, hdop: float = 0.9, alt_m: float = 35.0) -> bytes:
    """The RMC and GGA of one epoch, as a receiver prints them."""
    hhmmss = ts.strftime("%H%M%S.") + f"{ts.microsecond // 10000:02d}"
    la, ns = _ddmm(lat, "N", "S", 2)
    lo, ew = _ddmm(lon, "E", "W", 3)
    knots = speed_kmh / 1.852
    rmc = f"GPRMC,{hhmmss},A,{la},{ns},{lo},{ew},{knots:.2f},{course_deg:.1f},{ts:%d%m%y},,,A"
    gga = f"GPGGA,{hhmmss},{la},{ns},{lo},{ew},1,{sats:02d},{hdop:.1f},{alt_m:.1f},M,47.0,M,,"
    return nmea(rmc) + nmea(gga)


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    y = math.sin(lon2 - lon1) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return math.degrees(math.atan2(y, x)) % 360


def drive(waypoints: list[tuple[float, float]], speed_kmh: float, start: datetime | None = None,
          period_s: float = 1.0) -> Iterator[bytes]:
    """One epoch of NMEA every `period_s` of receiver time while driving along the waypoints,
    then one stationary epoch at the last point."""
    ts = (start or datetime.now(UTC)).replace(microsecond=0)
    step_m = speed_kmh / 3.6 * period_s
    for a, b in itertools.pairwise(waypoints):
        legs = max(1, math.ceil(_distance_m(a, b) / step_m))
        course = _bearing(a, b)
        for i in range(legs):
            f = i / legs
            yield fix_sentences(ts, a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, speed_kmh, course)
            ts += timedelta(seconds=period_s)
    yield fix_sentences(ts, *waypoints[-1], 0.0, 0.0)


def portal_passage(epcs: list[str], outer: int, inner: int, outward: bool, reads_per_side: int = 3,
                   rssi_dbm: int = -55) -> bytes:
    """Reader bytes of cases passing a portal door: each tag peaks first on the side it comes from."""
    first, second = (inner, outer) if outward else (outer, inner)
    frames = []
    for epc in epcs:
        for antenna in (first, second):
            frames += [m.tag_record_frame(epc, antenna, rssi_dbm + (4 if i == 1 else 0))
                       for i in range(reads_per_side)]
    return b"".join(frames)


class _CommandedDevice:
    """A simulated reader that answers the host's command frames on its pseudo-terminal."""

    HEADER = 0
    fd: int

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray()
        self.received: list[tuple[int, bytes]] = []  # (command, data) of every command, in order

    def handle(self, data: bytes) -> None:
        """Take host bytes; write the device's answers."""
        self._buf += data
        while (start := self._buf.find(self.HEADER)) >= 0 and len(self._buf) >= start + 2:
            total = self._host_frame_length(self._buf[start + 1])
            if len(self._buf) < start + total:
                return
            frame = bytes(self._buf[start:start + total])
            del self._buf[:start + total]
            command = self._command(frame)
            if command is not None:
                self.received.append(command)
                os.write(self.fd, self._answer(*command))

    def _host_frame_length(self, length_byte: int) -> int:
        raise NotImplementedError

    def _command(self, frame: bytes) -> tuple[int, bytes] | None:
        raise NotImplementedError

    def _answer(self, command: int, payload: bytes) -> bytes:
        raise NotImplementedError


class R2000Reader(_CommandedDevice):
    """Answers like an R2000 reader with `antennas` ports: 0x10 success, 0x4C for an output power above
    33 dBm, 0x3B for a work antenna it does not have."""

    HEADER = r2000.HEAD

    def __init__(self, fd: int, antennas: int = 4) -> None:
        super().__init__(fd)
        self.antennas = antennas

    def _host_frame_length(self, length_byte: int) -> int:
        return length_byte + 2

    def _command(self, frame: bytes) -> tuple[int, bytes] | None:
        return (frame[3], frame[4:-1]) if r2000.checksum(frame[:-1]) == frame[-1] else None

    def _answer(self, command: int, payload: bytes) -> bytes:
        if command == r2000.CMD_SET_OUTPUT_POWER and payload[:1] > b"\x21":
            return r2000.frame(1, command, bytes([0x4C]))
        if command == r2000.CMD_SET_WORK_ANTENNA and payload[0] >= self.antennas:
            return r2000.frame(1, command, bytes([0x3B]))
        return r2000.frame(1, command, bytes([r2000.SUCCESS]))


class MercuryModule(_CommandedDevice):
    """Answers host commands like an M6e Nano module: OK for what it accepts, status 0x0105
    (invalid parameter) for a read power above 30 dBm or an unknown region."""

    HEADER = m.HEADER

    def _host_frame_length(self, length_byte: int) -> int:
        return length_byte + 5  # host frames carry no status bytes

    def _command(self, frame: bytes) -> tuple[int, bytes] | None:
        return (frame[2], frame[3:-2]) if m.crc16(frame[1:-2]) == int.from_bytes(frame[-2:], "big") else None

    def _answer(self, opcode: int, payload: bytes) -> bytes:
        invalid = (opcode == m.OP_SET_READ_TX_POWER and int.from_bytes(payload[:2], "big", signed=True) > 3000) or (
            opcode == m.OP_SET_REGION and payload[:1] not in {bytes([c]) for c in m.REGIONS.values()})
        if invalid:
            return m.response(opcode, b"", status=0x0105)
        if opcode == m.OP_MULTI_PROTOCOL_TAG_OP:
            return m.response(opcode, bytes.fromhex("01220000"))
        return m.response(opcode)
