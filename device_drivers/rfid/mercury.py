"""ThingMagic / JADAK Mercury embedded-module serial protocol (M6e, Micro, Nano).

Frame: 0xFF, length of data, opcode, [status (2 bytes), module → host only], data, CRC-16.
The CRC uses the CCITT polynomial 0x1021 with init 0xFFFF, but shifts the message bits into the
register (no augmentation) as the module's firmware does; it is computed over everything after the
0xFF header. A textbook CRC-CCITT does not match the module's frames.
"""

from __future__ import annotations

from array import array
from binascii import crc_hqx
from collections import deque
from datetime import UTC, datetime

from device_drivers.framing import StreamDecoder
from device_drivers.rfid import register
from device_drivers.types import TagRead

HEADER = 0xFF
OP_READ_TAG_ID_MULTIPLE = 0x22
OP_MULTI_PROTOCOL_TAG_OP = 0x2F
OP_SET_ANTENNA_PORT = 0x91
OP_SET_READ_TX_POWER = 0x92
OP_SET_TAG_PROTOCOL = 0x93
OP_SET_REGION = 0x97
OP_VERSION = 0x03

STATUS_OK = 0x0000
STATUS_NO_TAGS = 0x0400  # the module's keep-alive while streaming with no tag in the field

# Module status codes seen in practice, turned into words for logs and state messages.
STATUS_TEXT = {
    0x0100: "invalid message length",
    0x0101: "invalid opcode",
    0x0105: "invalid parameter value",
    0x0400: "no tags found",
    0x0402: "tag protocol not set",
    0x0504: "temperature too high",
    0x0505: "high return loss (antenna missing?)",
    0x050A: "region not set",
}

# Region codes as the Nano firmware numbers them.
REGIONS = {"IN": 0x04, "JP": 0x05, "PRC": 0x06, "EU": 0x08, "KR": 0x09, "AU": 0x0B, "NZ": 0x0C, "NA": 0x0D,
           "OPEN": 0xFF}

# Metadata flags of a tag record, in the order their fields follow each other, with their sizes.
_META = ((0x0001, "reads", 1), (0x0002, "rssi", 1), (0x0004, "antenna", 1), (0x0008, "freq", 3),
         (0x0010, "timestamp", 4), (0x0020, "phase", 2), (0x0040, "protocol", 1))
_META_DATA = 0x0080
_META_GPIO = 0x0100


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def _shift_in_zero_bytes(crc: int) -> int:
    """The register after shifting in two zero bytes: crc · x^16 mod P."""
    for _ in range(2):
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[crc >> 8]
    return crc


# The module's CRC S = (init·x^n + M) mod P, while binascii.crc_hqx (C speed) gives
# (init'·x^n + M·x^16) mod P. With init' = init·x^16 the latter is S·x^16, so one table lookup of
# the inverse of "times x^16" turns the fast CRC into the module's.
_UNSHIFT = array("H", bytes(2 * 65536))
for _value in range(65536):
    _UNSHIFT[_shift_in_zero_bytes(_value)] = _value
_INIT = _shift_in_zero_bytes(0xFFFF)


def crc16(data: bytes | bytearray) -> int:
    return _UNSHIFT[crc_hqx(data, _INIT)]


class ModuleError(Exception):
    def __init__(self, opcode: int, status: int) -> None:
        self.opcode, self.status = opcode, status
        super().__init__(f"module answered opcode 0x{opcode:02X} with status 0x{status:04X}: "
                         f"{STATUS_TEXT.get(status, 'unknown status')}")


def split_response(frame: bytes) -> tuple[int, int, bytes]:
    """(opcode, status, data) of a checked module → host frame."""
    return frame[2], int.from_bytes(frame[3:5], "big"), bytes(frame[5:-2])


@register("thingmagic-mercury")
class MercuryDecoder(StreamDecoder[TagRead]):
    """Module → host stream; continuous-read tag records become TagReads, other frames are counted."""

    def __init__(self, reader: str = "") -> None:
        super().__init__()
        self.reader = reader
        self.errors: list[ModuleError] = []
        self.responses: deque[tuple[int, int, bytes]] = deque(maxlen=64)  # answers to commands

    HEADER = HEADER
    BAD = "bad crc"

    def _length(self, buf: bytearray, pos: int) -> int | None:
        # header, length, opcode, status (2), data, crc (2)
        return buf[pos + 1] + 7 if len(buf) > pos + 1 else None

    def _valid(self, buf: bytearray, pos: int, total: int) -> bool:
        end = pos + total
        return crc16(buf[pos + 1:end - 2]) == int.from_bytes(buf[end - 2:end], "big")

    def _decode(self, frame: bytes) -> list[TagRead]:
        opcode, status, data = split_response(frame)
        if opcode != OP_READ_TAG_ID_MULTIPLE:
            self.responses.append((opcode, status, data))
            return []
        if status == STATUS_NO_TAGS:
            return []
        if status != STATUS_OK:
            self.errors.append(ModuleError(opcode, status))
            del self.errors[:-16]
            self.bad_frames["module status"] += 1
            return []
        return decode_tag_records(data, self.reader)


def decode_tag_records(data: bytes, reader: str = "") -> list[TagRead]:
    """Data of a 0x22 streaming response: option, search flags (2), metadata flags (2), count, records."""
    if len(data) < 6:
        return []
    flags = int.from_bytes(data[3:5], "big")
    count, pos = data[5], 6
    now = datetime.now(UTC)
    reads: list[TagRead] = []
    for _ in range(count):
        meta: dict[str, int] = {}
        for bit, name, size in _META:
            if flags & bit:
                meta[name] = int.from_bytes(data[pos:pos + size], "big", signed=(name == "rssi"))
                pos += size
        if flags & _META_DATA:
            bits = int.from_bytes(data[pos:pos + 2], "big")
            pos += 2 + (bits + 7) // 8
        if flags & _META_GPIO:
            pos += 1
        epc_bits = int.from_bytes(data[pos:pos + 2], "big")
        pos += 2
        tag = data[pos:pos + epc_bits // 8]  # PC (2), EPC, tag CRC (2)
        pos += epc_bits // 8
        if len(tag) < 4:
            raise ValueError("tag record shorter than its PC and CRC")
        reads.append(TagRead(
            epc=tag[2:-2].hex().upper(),
            antenna=meta.get("antenna", 0x11) & 0x0F,  # rx port in the low nibble
            rssi_dbm=float(meta["rssi"]) if "rssi" in meta else None,
            read_at=now,
            reader=reader,
            frequency_khz=meta.get("freq"),
            phase=meta.get("phase"),
        ))
    return reads
