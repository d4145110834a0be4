"""JT/T 808 (2013 and 2019), China's road transport vehicle terminal protocol: framing, the message
header, and the messages a positioning platform exchanges with terminals.

Frame: 0x7E, escaped (header, body, check code), 0x7E. Inside, 0x7E is sent as 0x7D 0x02 and 0x7D as
0x7D 0x01; the check code is the XOR of every unescaped byte of header and body. Header: message id,
body properties (bits 0-9 body length, 10-12 encryption, 13 subpackaged, 14 the 2019 version flag),
[protocol version, 2019], terminal phone number in BCD (6 bytes in 2013, 10 in 2019), serial number,
[package count and index, when subpackaged]. Words and double words are big-endian; times are BCD
YYMMDDhhmmss in GMT+8.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from device_drivers.framing import StreamDecoder

FLAG, ESCAPE = 0x7E, 0x7D
BEIJING_OFFSET = timedelta(hours=8)
BEIJING = timezone(BEIJING_OFFSET)
MAX_FRAME = 1100  # a body holds at most 1023 bytes; header, check code and escapes fit in the rest

# Message ids: terminal → platform
TERMINAL_RESPONSE, HEARTBEAT, REGISTER, DEREGISTER, AUTHENTICATE = 0x0001, 0x0002, 0x0100, 0x0003, 0x0102
LOCATION, BATCH_LOCATION = 0x0200, 0x0704
# platform → terminal
PLATFORM_RESPONSE, REGISTER_RESPONSE = 0x8001, 0x8100
# Results of a platform general response (0x8001)
OK, FAILURE, MESSAGE_ERROR, NOT_SUPPORTED = 0, 1, 2, 3
# Results of a register response (0x8100)
REGISTERED, VEHICLE_TAKEN, NO_SUCH_VEHICLE, TERMINAL_TAKEN, NO_SUCH_TERMINAL = 0, 1, 2, 3, 4

# Alarm flag bits of a location report, by the names dispatchers read.
ALARMS = {0: "emergency", 1: "overspeed", 2: "fatigue_driving", 3: "danger_warning", 4: "gnss_fault",
          5: "gnss_antenna_cut", 6: "gnss_antenna_short", 7: "power_low", 8: "power_cut", 9: "display_fault",
          10: "tts_fault", 11: "camera_fault", 18: "driving_overtime_today", 19: "parking_overtime",
          20: "area_in_out", 21: "route_in_out", 22: "route_time", 23: "route_deviation", 24: "vss_fault",
          25: "fuel_abnormal", 26: "vehicle_stolen", 27: "illegal_ignition", 28: "illegal_displacement",
          29: "collision", 30: "rollover", 31: "illegal_door_open"}
STATUS_FIXED, STATUS_SOUTH, STATUS_WEST = 1 << 1, 1 << 2, 1 << 3
# Additional items of a location report: id → (name, bytes, units per value). Others are kept raw.
ITEMS = {0x01: ("mileage_km", 4, 10), 0x02: ("fuel_l", 2, 10), 0x03: ("recorder_speed_kmh", 2, 10),
         0x30: ("signal", 1, 1), 0x31: ("satellites", 1, 1)}


_BAD_ESCAPE = re.compile(rb"\x7d(?![\x01\x02])")


class Jt808Error(ValueError):
    """A frame whose content does not make a message of the standard."""


@dataclass(frozen=True, slots=True)
class Header:
    message_id: int
    phone: str  # the terminal's phone number, its identity (12 digits in 2013, 20 in 2019)
    serial: int
    version: int | None = None  # the 2019 protocol version byte; None for 2013
    encryption: int = 0
    packages: tuple[int, int] | None = None  # (count, index from 1) of a subpackaged message

    @property
    def is_2019(self) -> bool:
        return self.version is not None


@dataclass(frozen=True, slots=True)
class Message:
    header: Header
    body: bytes


@dataclass(frozen=True, slots=True)
class Location:
    """One location report (0x0200, or one item of 0x0704)."""

    alarms: tuple[str, ...]
    status: int
    fixed: bool  # the terminal says it has a position fix
    lat: float
    lon: float
    altitude_m: int
    speed_kmh: float
    course_deg: int
    ts: datetime  # UTC
    extras: dict[str, float | str] = field(default_factory=dict)  # additional items (unknown ones in hex)


@dataclass(frozen=True, slots=True)
class Registration:
    province: int
    city: int
    manufacturer: str
    model: str
    terminal_id: str
    plate_color: int
    plate: str


# --- framing ---------------------------------------------------------------------------------------

def escape(data: bytes) -> bytes:
    return data.replace(bytes([ESCAPE]), b"\x7d\x01").replace(bytes([FLAG]), b"\x7d\x02")


def unescape(data: bytes) -> bytes:
    if ESCAPE not in data:
        return data
    if _BAD_ESCAPE.search(data):
        raise Jt808Error("a 0x7D not followed by 0x01 or 0x02")
    # 7D 02 first: a 7D that 7D 01 yields must not pair with the byte after it.
    return data.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")


def check_code(data: bytes) -> int:
    """XOR of every byte: eight at a time, then the eight folded."""
    words = int.from_bytes(data[: len(data) // 8 * 8], "big")
    folded = 0
    while words:
        folded ^= words & 0xFFFF_FFFF_FFFF_FFFF
        words >>= 64
    return functools.reduce(operator.xor, folded.to_bytes(8, "big") + data[len(data) // 8 * 8:], 0)


class Jt808Decoder(StreamDecoder[Message]):
    """The byte stream of one terminal connection → messages (check code verified, subpackages not yet joined)."""

    def __init__(self) -> None:
        super().__init__(max_buffer=4 * MAX_FRAME)

    def _cut(self, buf: bytearray) -> tuple[int, bytes | None, str | None] | None:
        start = buf.find(FLAG)
        if start < 0:
            return (len(buf), None, "garbage") if buf else None
        if start > 0:
            return start, None, "garbage"
        end = buf.find(FLAG, 1)
        if end < 0:
            return (len(buf), None, "overlong frame") if len(buf) > MAX_FRAME else None
        if end == 1:  # two flags in a row: the first closed a frame we never saw begin
            return 1, None, None
        data = _checked(buf[1:end])
        if data is not None:
            return end + 1, data, None
        # Some terminals leave a 0x7E inside a frame unescaped: a later flag that closes a frame whose
        # check code and header length both hold is its real end.
        later = buf.find(FLAG, end + 1)
        while 0 < later <= MAX_FRAME:
            data = _checked(buf[1:later])
            if data is not None and _length_holds(data):
                return later + 1, data, None
            later = buf.find(FLAG, later + 1)
        return end, None, "bad check code"  # the closing flag stays: it may open the next frame

    def _decode(self, frame: bytes) -> list[Message]:
        return [parse(frame)]


def _checked(raw: bytearray) -> bytes | None:
    """Header and body of an escaped frame content whose check code holds, else None."""
    try:
        data = unescape(bytes(raw))
    except Jt808Error:
        return None
    return data[:-1] if len(data) >= 13 and check_code(data[:-1]) == data[-1] else None


def _length_holds(data: bytes) -> bool:
    try:
        parse(data)
    except (Jt808Error, IndexError):
        return False
    return True


def frame(header: Header, body: bytes) -> bytes:
    """A whole frame: flag, escaped header + body + check code, flag."""
    data = encode_header(header, len(body)) + body
    return bytes([FLAG]) + escape(data + bytes([check_code(data)])) + bytes([FLAG])


# --- header ----------------------------------------------------------------------------------------

def bcd(data: bytes) -> str:
    return data.hex()


def to_bcd(digits: str, size: int) -> bytes:
    if not digits.isdigit() or len(digits) > 2 * size:
        raise Jt808Error(f"{digits!r} is not a number of at most {2 * size} digits")
    return bytes.fromhex(digits.zfill(2 * size))


def parse(data: bytes) -> Message:
    """Header and body of an unescaped frame without its check code."""
    message_id, properties = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
    length, encryption = properties & 0x03FF, (properties >> 10) & 0x07
    subpackaged, is_2019 = bool(properties & 0x2000), bool(properties & 0x4000)
    pos = 4
    version = None
    if is_2019:
        version, pos = data[pos], pos + 1
    phone_size = 10 if is_2019 else 6
    phone = bcd(data[pos:pos + phone_size])
    pos += phone_size
    serial, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
    packages = None
    if subpackaged:
        packages = (int.from_bytes(data[pos:pos + 2], "big"), int.from_bytes(data[pos + 2:pos + 4], "big"))
        pos += 4
        if not 1 <= packages[1] <= packages[0]:
            raise Jt808Error(f"package {packages[1]} of {packages[0]}")
    body = data[pos:]
    if len(body) != length:
        raise Jt808Error(f"body of {len(body)} bytes, the header says {length}")
    return Message(Header(message_id, phone, serial, version, encryption, packages), body)


def encode_header(header: Header, length: int) -> bytes:
    if length > 0x03FF:
        raise Jt808Error("a body holds at most 1023 bytes: subpackage it")
    properties = length | (header.encryption << 10) | (0x2000 if header.packages else 0) | (
        0x4000 if header.is_2019 else 0)
    out = header.message_id.to_bytes(2, "big") + properties.to_bytes(2, "big")
    if header.is_2019:
        out += bytes([header.version or 1])
    out += to_bcd(header.phone, 10 if header.is_2019 else 6) + header.serial.to_bytes(2, "big")
    if header.packages:
        out += header.packages[0].to_bytes(2, "big") + header.packages[1].to_bytes(2, "big")
    return out


# --- bodies: terminal → platform -------------------------------------------------------------------

def _text(data: bytes) -> str:
    """GBK text (plates are Chinese), NUL padding dropped."""
    return data.rstrip(b"\x00").decode("gbk", "replace").strip()


def registration(message: Message) -> Registration:
    b = message.body
    sizes = (11, 30, 30) if message.header.is_2019 else (5, 20, 7)
    pos = 4
    fields = []
    for size in sizes:
        fields.append(_text(b[pos:pos + size]))
        pos += size
    if len(b) < pos + 1:
        raise Jt808Error("register body too short")
    return Registration(int.from_bytes(b[0:2], "big"), int.from_bytes(b[2:4], "big"), *fields, plate_color=b[pos],
                        plate=_text(b[pos + 1:]))


def auth_code(message: Message) -> str:
    """The code of an authenticate message (2019: length-prefixed, then IMEI and software version)."""
    b = message.body
    if message.header.is_2019:
        if not b or len(b) < 1 + b[0]:
            raise Jt808Error("authenticate body too short")
        return b[1:1 + b[0]].decode("ascii", "replace")
    return b.decode("ascii", "replace")


def location(body: bytes) -> Location:
    if len(body) < 28:
        raise Jt808Error(f"a location report has at least 28 bytes, not {len(body)}")
    alarm, status = int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big")
    lat, lon = int.from_bytes(body[8:12], "big") / 1e6, int.from_bytes(body[12:16], "big") / 1e6
    if status & STATUS_SOUTH:
        lat = -lat
    if status & STATUS_WEST:
        lon = -lon
    when = bcd(body[22:28])
    try:
        ts = datetime(2000 + int(when[0:2]), int(when[2:4]), int(when[4:6]), int(when[6:8]), int(when[8:10]),
                      int(when[10:12]), tzinfo=UTC) - BEIJING_OFFSET  # GMT+8 on the wire
    except ValueError:
        raise Jt808Error(f"not a time: {when}") from None
    return Location(alarms=tuple(name for bit, name in ALARMS.items() if alarm >> bit & 1) if alarm else (),
                    status=status,
                    fixed=bool(status & STATUS_FIXED), lat=lat, lon=lon,
                    altitude_m=int.from_bytes(body[16:18], "big", signed=True),
                    speed_kmh=int.from_bytes(body[18:20], "big") / 10, course_deg=int.from_bytes(body[20:22], "big"),
                    ts=ts, extras=dict(_items(body[28:])))


def _items(data: bytes) -> Iterator[tuple[str, float | str]]:
    """Additional items; padding or an item cut short ends them (the fix stands, what is left is kept raw)."""
    pos = 0
    while pos + 2 <= len(data):
        item, size = data[pos], data[pos + 1]
        value = data[pos + 2:pos + 2 + size]
        if len(value) < size:
            yield "items_unread", data[pos:].hex()
            return
        pos += 2 + size
        known = ITEMS.get(item)
        if known and known[1] == size:
            number = int.from_bytes(value, "big")
            yield known[0], number / known[2] if known[2] != 1 else number
        else:
            yield f"item_{item:02x}", value.hex()


def batch_locations(body: bytes) -> tuple[bool, list[Location]]:
    """(blind area supplement?, the reports) of a 0x0704 batch upload."""
    if len(body) < 3:
        raise Jt808Error("batch upload body too short")
    count, supplement = int.from_bytes(body[0:2], "big"), body[2] == 1
    reports, pos = [], 3
    for _ in range(count):
        size = int.from_bytes(body[pos:pos + 2], "big")
        if pos + 2 + size > len(body):
            raise Jt808Error("batch item cut short")
        reports.append(location(body[pos + 2:pos + 2 + size]))
        pos += 2 + size
    return supplement, reports


# --- bodies: platform → terminal, and a terminal's for simulators -------------------------------------

def platform_response(to: Header, result: int = OK) -> bytes:
    return to.serial.to_bytes(2, "big") + to.message_id.to_bytes(2, "big") + bytes([result])


def register_response(to: Header, result: int, code: str = "") -> bytes:
    return to.serial.to_bytes(2, "big") + bytes([result]) + (code.encode("ascii") if result == REGISTERED else b"")


def response_result(body: bytes) -> tuple[int, int, int]:
    """(answered serial, answered message id, result) of a 0x8001 or 0x0001."""
    if len(body) < 5:
        raise Jt808Error("response body too short")
    return int.from_bytes(body[0:2], "big"), int.from_bytes(body[2:4], "big"), body[4]


def registration_body(r: Registration, is_2019: bool = False) -> bytes:
    sizes = (11, 30, 30) if is_2019 else (5, 20, 7)
    padded = [value.encode("gbk")[:size].ljust(size, b"\x00")
              for value, size in zip((r.manufacturer, r.model, r.terminal_id), sizes, strict=True)]
    return (r.province.to_bytes(2, "big") + r.city.to_bytes(2, "big") + b"".join(padded) + bytes([r.plate_color])
            + r.plate.encode("gbk"))


def auth_body(code: str, is_2019: bool = False, imei: str = "", software: str = "") -> bytes:
    raw = code.encode("ascii")
    if not is_2019:
        return raw
    return bytes([len(raw)]) + raw + imei.encode("ascii")[:15].ljust(15, b"\x00") + \
        software.encode("ascii")[:20].ljust(20, b"\x00")


def location_body(at: Location) -> bytes:
    alarm = sum(1 << bit for bit, name in ALARMS.items() if name in at.alarms)
    status = at.status | (STATUS_FIXED if at.fixed else 0) | (STATUS_SOUTH if at.lat < 0 else 0) | (
        STATUS_WEST if at.lon < 0 else 0)
    local = at.ts.astimezone(BEIJING)
    body = (alarm.to_bytes(4, "big") + status.to_bytes(4, "big") + round(abs(at.lat) * 1e6).to_bytes(4, "big")
            + round(abs(at.lon) * 1e6).to_bytes(4, "big") + at.altitude_m.to_bytes(2, "big", signed=True)
            + round(at.speed_kmh * 10).to_bytes(2, "big") + at.course_deg.to_bytes(2, "big")
            + bytes.fromhex(local.strftime("%y%m%d%H%M%S")))
    for item, (name, size, units) in ITEMS.items():
        if name in at.extras:
            body += bytes([item, size]) + round(float(at.extras[name]) * units).to_bytes(size, "big")
    return body


def batch_body(reports: list[Location], supplement: bool) -> bytes:
    out = len(reports).to_bytes(2, "big") + bytes([1 if supplement else 0])
    for report in reports:
        body = location_body(report)
        out += len(body).to_bytes(2, "big") + body
    return out


class Reassembly:
    """Joins the packages of subpackaged messages, per (message id, serial of the first package)."""

    MAX_PENDING = 64  # messages in reassembly per connection; the oldest gives way

    def __init__(self) -> None:
        self.pending: dict[tuple[int, int], dict[int, bytes]] = {}

    def add(self, message: Message) -> Message | None:
        """The whole message when this package completes it (or it was not subpackaged)."""
        h = message.header
        if h.packages is None:
            return message
        count, index = h.packages
        first_serial = (h.serial - index + 1) & 0xFFFF  # packages are numbered with consecutive serials
        key = (h.message_id, first_serial)
        parts = self.pending.setdefault(key, {})
        parts[index] = message.body
        if len(self.pending) > self.MAX_PENDING:
            del self.pending[next(iter(self.pending))]
        if len(parts) < count:
            return None
        del self.pending[key]
        body = b"".join(parts[i] for i in range(1, count + 1))
        return Message(Header(h.message_id, h.phone, first_serial, h.version, h.encryption), body)
