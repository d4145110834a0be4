"""ThingMagic / JADAK Mercury embedded-module serial protocol (M6e, Micro, Nano): frames, decoder,
command encoder, and the frames the module sends (for simulators).

Frame: 0xFF, length of data, opcode, [status (2 bytes), module → host only], data, CRC-16.
The CRC uses the CCITT polynomial 0x1021 with init 0xFFFF, but shifts the message bits into the
register (no augmentation) as the module's firmware does; it is computed over everything after the
0xFF header. A textbook CRC-CCITT does not match the module's frames.
"""

from __future__ import annotations

from array import array
from binascii import crc_hqx
from collections.abc import Mapping
from datetime import UTC, datetime

from device_drivers.framing import StreamDecoder
from device_drivers.rfid.protocol import Command, CommandRefused, ReaderProtocol
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


class ModuleError(CommandRefused):
    def __init__(self, opcode: int, status: int) -> None:
        self.opcode = opcode
        super().__init__(opcode, status, f"module answered opcode 0x{opcode:02X} with status 0x{status:04X}: "
                                         f"{STATUS_TEXT.get(status, 'unknown status')}")


def split_response(frame: bytes) -> tuple[int, int, bytes]:
    """(opcode, status, data) of a checked module → host frame."""
    return frame[2], int.from_bytes(frame[3:5], "big"), bytes(frame[5:-2])


class MercuryDecoder(StreamDecoder[TagRead]):
    """Module → host stream; continuous-read tag records become TagReads, answers to commands go to
    `responses`."""

    def __init__(self, reader: str = "") -> None:
        super().__init__()
        self.reader = reader
        self.errors: list[ModuleError] = []

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


# --- host → module commands, and module → host frames for simulators ----------------------------

FULL_METADATA = 0x01FF  # every field: reads, RSSI, antenna, frequency, timestamp, phase, protocol, data, GPIO
GEN2 = 0x05


def _frame(body: bytes) -> bytes:
    if len(body) - 1 > 0xFF + 3:
        raise ValueError("frame data longer than 255 bytes")
    return bytes([HEADER]) + body + crc16(body).to_bytes(2, "big")


def command(opcode: int, data: bytes = b"") -> bytes:
    """Host → module: 0xFF, len, opcode, data, CRC."""
    if len(data) > 0xFF:
        raise ValueError("command data longer than 255 bytes")
    return _frame(bytes([len(data), opcode]) + data)


def response(opcode: int, data: bytes = b"", status: int = STATUS_OK) -> bytes:
    """Module → host: 0xFF, len, opcode, status, data, CRC."""
    if len(data) > 0xFF:
        raise ValueError("response data longer than 255 bytes")
    return _frame(bytes([len(data), opcode]) + status.to_bytes(2, "big") + data)


def set_region(region: str) -> bytes:
    try:
        return command(OP_SET_REGION, bytes([REGIONS[region]]))
    except KeyError:
        raise ValueError(f"unknown region {region!r}; known: {', '.join(REGIONS)}") from None


def set_read_power(dbm: float) -> bytes:
    """Read power in dBm, sent in centi-dBm."""
    return command(OP_SET_READ_TX_POWER, round(dbm * 100).to_bytes(2, "big", signed=True))


def set_antenna(port: int) -> bytes:
    """Transmit and receive on this antenna port (monostatic)."""
    return command(OP_SET_ANTENNA_PORT, bytes([port, port]))


def set_gen2_protocol() -> bytes:
    return command(OP_SET_TAG_PROTOCOL, (GEN2).to_bytes(2, "big"))


def start_continuous_read() -> bytes:
    # Multi-protocol tag op: stream Gen2 reads (search flags 0x001B, 1000 ms on) with full metadata.
    return command(OP_MULTI_PROTOCOL_TAG_OP, bytes.fromhex("00000122000005072210001B03E801FF"))


def stop_continuous_read() -> bytes:
    return command(OP_MULTI_PROTOCOL_TAG_OP, bytes.fromhex("000002"))


def tag_record_frame(epc_hex: str, antenna: int, rssi_dbm: int, frequency_khz: int = 915_250,
                     timestamp_ms: int = 0, phase: int = 0, reads: int = 1) -> bytes:
    """A streaming tag-read frame exactly as the module sends it (opcode 0x22, full metadata)."""
    epc = bytes.fromhex(epc_hex)
    pc = ((len(epc) // 2) << 11).to_bytes(2, "big")  # PC word: EPC length in 16-bit words
    tag = pc + epc + crc16(epc).to_bytes(2, "big")
    record = (bytes([reads]) + rssi_dbm.to_bytes(1, "big", signed=True) + bytes([(antenna << 4) | antenna])
              + frequency_khz.to_bytes(3, "big") + timestamp_ms.to_bytes(4, "big") + phase.to_bytes(2, "big")
              + bytes([GEN2]) + b"\x00\x00" + b"\x0f" + (len(tag) * 8).to_bytes(2, "big") + tag)
    data = bytes([0x10]) + (0x001B).to_bytes(2, "big") + FULL_METADATA.to_bytes(2, "big") + b"\x01" + record
    return response(OP_READ_TAG_ID_MULTIPLE, data)


def configure(region: str, power_dbm: Mapping[int, float]) -> list[Command]:
    """The commands that put a module into a profile's region and read power, in the order it needs them.
    The module has one read power for all ports: the highest asked for is applied (and checked)."""
    power, first = max(power_dbm.values()), next(iter(power_dbm))
    return [Command(f"region {region}", set_region(region), OP_SET_REGION),
            Command("protocol Gen2", set_gen2_protocol(), OP_SET_TAG_PROTOCOL),
            Command(f"antenna {first}", set_antenna(first), OP_SET_ANTENNA_PORT),
            Command(f"read power {power} dBm", set_read_power(power), OP_SET_READ_TX_POWER)]


PROTOCOL = ReaderProtocol("thingmagic-mercury", MercuryDecoder, configure, start=start_continuous_read(),
                          refused=ModuleError)
