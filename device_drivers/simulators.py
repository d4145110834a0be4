"""Simulated devices that write the real wire bytes: reader modules, a GPS receiver, a JT/T 808 terminal.

Used by tests and by `cargotrace up --demo` on pseudo-terminals, where a real gateway reads them
exactly as it reads hardware.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import os
import socket
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from device_drivers import jt808, teltonika
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


@dataclass(frozen=True, slots=True)
class RoutePoint:
    ts: datetime
    lat: float
    lon: float
    speed_kmh: float
    course_deg: float


def route(waypoints: list[tuple[float, float]], speed_kmh: float, start: datetime | None = None,
          period_s: float = 1.0) -> Iterator[RoutePoint]:
    """Where a vehicle driving along the waypoints is every `period_s`, then stopped at the last one."""
    ts = (start or datetime.now(UTC)).replace(microsecond=0)
    step_m = speed_kmh / 3.6 * period_s
    for a, b in itertools.pairwise(waypoints):
        legs = max(1, math.ceil(_distance_m(a, b) / step_m))
        course = _bearing(a, b)
        for i in range(legs):
            f = i / legs
            yield RoutePoint(ts, a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, speed_kmh, course)
            ts += timedelta(seconds=period_s)
    yield RoutePoint(ts, *waypoints[-1], 0.0, 0.0)


def drive(waypoints: list[tuple[float, float]], speed_kmh: float, start: datetime | None = None,
          period_s: float = 1.0) -> Iterator[bytes]:
    """One epoch of NMEA every `period_s` of receiver time along the route."""
    for p in route(waypoints, speed_kmh, start, period_s):
        yield fix_sentences(p.ts, p.lat, p.lon, p.speed_kmh, p.course_deg)


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


class Jt808Terminal:
    """A vehicle's JT/T 808 terminal on a TCP connection to a platform: registers, authenticates and
    reports, reading the platform's answer to each message."""

    def __init__(self, host: str, port: int, phone: str, is_2019: bool = False, timeout: float = 10.0) -> None:
        self.phone = phone.zfill(20 if is_2019 else 12)
        self.version = 1 if is_2019 else None
        self.serial = 0
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.decoder = jt808.Jt808Decoder()
        self.answers: list[jt808.Message] = []

    def send(self, message_id: int, body: bytes) -> jt808.Message:
        """Send one message; the platform's answer to it."""
        self.serial = (self.serial + 1) & 0xFFFF
        self.sock.sendall(jt808.frame(jt808.Header(message_id, self.phone, self.serial, self.version), body))
        while not self.answers:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("the platform closed the connection")
            self.answers += self.decoder.feed(data)
        return self.answers.pop(0)

    def register(self, plate: str = "沪A12345") -> tuple[int, str]:
        """(result, authentication code) of a registration."""
        body = jt808.registration_body(jt808.Registration(31, 1100, "70107", "CT-SIM", self.phone[-7:], 2, plate),
                                       self.version is not None)
        answer = self.send(jt808.REGISTER, body).body
        return answer[2], answer[3:].decode("ascii")

    def authenticate(self, code: str) -> int:
        answer = self.send(jt808.AUTHENTICATE, jt808.auth_body(code, self.version is not None, "860000000000001"))
        return jt808.response_result(answer.body)[2]

    def report(self, at: jt808.Location) -> int:
        return jt808.response_result(self.send(jt808.LOCATION, jt808.location_body(at)).body)[2]

    def close(self) -> None:
        self.sock.close()


def jt808_location(p: RoutePoint, alarms: tuple[str, ...] = ()) -> jt808.Location:
    return jt808.Location(alarms, 0, True, round(p.lat, 6), round(p.lon, 6), 10, p.speed_kmh,
                          round(p.course_deg) % 360, p.ts, {"satellites": 12})


def route_reports(waypoints: list[tuple[float, float]], speed_kmh: float, start: datetime,
                  period_s: float = 1.0, alarms_at: dict[int, tuple[str, ...]] | None = None) -> Iterator[
                      jt808.Location]:
    """JT/T 808 location reports along the route; `alarms_at` raises alarms with the n-th report."""
    for n, p in enumerate(route(waypoints, speed_kmh, start, period_s)):
        yield jt808_location(p, (alarms_at or {}).get(n, ()))


def teltonika_record(p: RoutePoint) -> teltonika.Record:
    """An AVL record with ignition on (IO 239) and 24 V on the supply (IO 66)."""
    return teltonika.Record(p.ts, 0, round(p.lat, 7), round(p.lon, 7), 10, round(p.course_deg) % 360, 12,
                            round(p.speed_kmh), 0, {239: 1, 66: 24_000})


class TeltonikaTracker:
    """A Teltonika tracker on a TCP connection: sends its IMEI, then AVL packets, reading each answer."""

    def __init__(self, host: str, port: int, imei: str, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.sendall(teltonika.imei_frame(imei))
        self.accepted = self.sock.recv(1) == teltonika.ACCEPT

    def send(self, records: list[teltonika.Record], extended: bool = False) -> int:
        """The number of records the server says it took."""
        self.sock.sendall(teltonika.packet_frame(records, extended))
        answer = b""
        while len(answer) < 4:
            chunk = self.sock.recv(4 - len(answer))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            answer += chunk
        return int.from_bytes(answer, "big")

    def close(self) -> None:
        self.sock.close()
