"""Teltonika trackers over TCP, Codec 8 and Codec 8 Extended.

A connection opens with the device's IMEI (2-byte length, 15 ASCII digits), which the server accepts
with 0x01 or refuses with 0x00. Then AVL data packets: four zero bytes, a 4-byte length, the codec id
(0x08 or 0x8E), the record count, the records, the count again, and a 4-byte field holding the
CRC-16/IBM of codec id through second count. The server answers each packet with the count of records
it took (4 bytes). A record: timestamp (ms since the epoch, UTC), priority, GPS element (longitude and
latitude in 1e-7°, altitude m, angle °, satellites, speed km/h) and IO elements (ids and values of 1, 2,
4 and 8 bytes; 8E: 2-byte ids and counts, and variable-length values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from device_drivers.framing import StreamDecoder

CODEC_8, CODEC_8E = 0x08, 0x8E
ACCEPT, REFUSE = b"\x01", b"\x00"
MAX_PACKET = 1_280  # a device's packets stay well under this (its buffer is 1 280 bytes on most models)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TeltonikaError(ValueError):
    """A packet whose content does not make records of the codec."""


@dataclass(frozen=True, slots=True)
class Imei:
    imei: str


@dataclass(frozen=True, slots=True)
class Record:
    ts: datetime
    priority: int
    lat: float
    lon: float
    altitude_m: int
    angle_deg: int
    satellites: int
    speed_kmh: int
    event_io: int = 0
    io: dict[int, int | str] = field(default_factory=dict)  # id → value (variable-length ones in hex)

    @property
    def fixed(self) -> bool:
        """Teltonika sends zero satellites when it has no valid position."""
        return self.satellites > 0


@dataclass(frozen=True, slots=True)
class Packet:
    codec: int
    records: tuple[Record, ...]


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/IBM (ARC): reflected polynomial 0xA001, initial value 0."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC[(crc ^ byte) & 0xFF]
    return crc


class TeltonikaDecoder(StreamDecoder[Imei | Packet]):
    """One device connection: its IMEI first, then AVL data packets."""

    def __init__(self) -> None:
        super().__init__(max_buffer=2 * MAX_PACKET)
        self.imei: str | None = None

    def _cut(self, buf: bytearray) -> tuple[int, bytes | None, str | None] | None:
        if self.imei is None:
            if len(buf) < 2:
                return None
            size = int.from_bytes(buf[0:2], "big")
            if size != 15:
                return len(buf), None, "not an IMEI"
            if len(buf) < 17:
                return None
            return 17, bytes(buf[:17]), None
        start = buf.find(b"\x00\x00\x00\x00")
        if start < 0:
            return (max(1, len(buf) - 3), None, "garbage") if len(buf) > 3 else None
        if start > 0:
            return start, None, "garbage"
        if len(buf) < 8:
            return None
        size = int.from_bytes(buf[4:8], "big")
        if not 3 <= size <= MAX_PACKET:
            return 1, None, "bad length"
        if len(buf) < 12 + size:
            return None
        data = bytes(buf[8:8 + size])
        if crc16(data) != int.from_bytes(buf[8 + size:12 + size], "big"):
            return 1, None, "bad crc"
        return 12 + size, data, None

    def _decode(self, frame: bytes) -> list[Imei | Packet]:
        if self.imei is None:
            digits = frame[2:].decode("ascii", "replace")
            if not digits.isdigit():
                raise TeltonikaError(f"not an IMEI: {digits!r}")
            self.imei = digits
            return [Imei(digits)]
        return [packet(frame)]


def packet(data: bytes) -> Packet:
    """Records of an AVL data field: codec id, count, records, count."""
    codec, count = data[0], data[1]
    if codec not in (CODEC_8, CODEC_8E):
        raise TeltonikaError(f"codec 0x{codec:02X} is not 8 or 8 Extended")
    records, pos = [], 2
    for _ in range(count):
        record, pos = _record(data, pos, codec == CODEC_8E)
        records.append(record)
    if pos + 1 != len(data) or data[pos] != count:
        raise TeltonikaError("the record counts or the length do not agree")
    return Packet(codec, tuple(records))


def _record(data: bytes, pos: int, extended: bool) -> tuple[Record, int]:
    ms = int.from_bytes(data[pos:pos + 8], "big")
    priority = data[pos + 8]
    gps = data[pos + 9:pos + 24]
    if len(gps) < 15:
        raise TeltonikaError("record cut short")
    lon, lat = int.from_bytes(gps[0:4], "big", signed=True) / 1e7, int.from_bytes(gps[4:8], "big", signed=True) / 1e7
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise TeltonikaError("a position off the globe")
    pos += 24
    width = 2 if extended else 1
    event_io = int.from_bytes(data[pos:pos + width], "big")
    pos += 2 * width  # event IO id, then the total count (the groups say it again)
    io: dict[int, int | str] = {}
    for size in (1, 2, 4, 8):
        n, pos = int.from_bytes(data[pos:pos + width], "big"), pos + width
        for _ in range(n):
            io[int.from_bytes(data[pos:pos + width], "big")] = int.from_bytes(data[pos + width:pos + width + size],
                                                                              "big")
            pos += width + size
    if extended:
        n, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        for _ in range(n):
            item, size = int.from_bytes(data[pos:pos + 2], "big"), int.from_bytes(data[pos + 2:pos + 4], "big")
            io[item] = data[pos + 4:pos + 4 + size].hex()
            pos += 4 + size
    if pos > len(data):
        raise TeltonikaError("record cut short")
    return Record(EPOCH + timedelta(milliseconds=ms), priority, lat, lon,
                  int.from_bytes(gps[8:10], "big", signed=True), int.from_bytes(gps[10:12], "big"), gps[12],
                  int.from_bytes(gps[13:15], "big"), event_io, io), pos


# --- the device side, for simulators and tests ----------------------------------------------------------

def imei_frame(imei: str) -> bytes:
    return len(imei).to_bytes(2, "big") + imei.encode("ascii")


def packet_frame(records: list[Record], extended: bool = False) -> bytes:
    data = bytes([CODEC_8E if extended else CODEC_8, len(records)]) + b"".join(
        _record_bytes(r, extended) for r in records) + bytes([len(records)])
    return b"\x00\x00\x00\x00" + len(data).to_bytes(4, "big") + data + crc16(data).to_bytes(4, "big")


def _record_bytes(r: Record, extended: bool) -> bytes:
    width = 2 if extended else 1
    out = (round((r.ts - EPOCH).total_seconds() * 1000).to_bytes(8, "big") + bytes([r.priority])
           + round(r.lon * 1e7).to_bytes(4, "big", signed=True) + round(r.lat * 1e7).to_bytes(4, "big", signed=True)
           + r.altitude_m.to_bytes(2, "big", signed=True) + r.angle_deg.to_bytes(2, "big") + bytes([r.satellites])
           + r.speed_kmh.to_bytes(2, "big") + r.event_io.to_bytes(width, "big")
           + len(r.io).to_bytes(width, "big"))
    numbers = {k: v for k, v in r.io.items() if isinstance(v, int)}
    for size in (1, 2, 4, 8):
        group = [(k, v) for k, v in numbers.items() if _size(v) == size]
        out += len(group).to_bytes(width, "big") + b"".join(
            k.to_bytes(width, "big") + v.to_bytes(size, "big") for k, v in group)
    if extended:
        blobs = [(k, bytes.fromhex(v)) for k, v in r.io.items() if isinstance(v, str)]
        out += len(blobs).to_bytes(2, "big") + b"".join(
            k.to_bytes(2, "big") + len(b).to_bytes(2, "big") + b for k, b in blobs)
    return out


def _size(value: int) -> int:
    return next(size for size in (1, 2, 4, 8) if value < 1 << (8 * size))
