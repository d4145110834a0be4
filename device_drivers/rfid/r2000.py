"""Impinj Indy R2000 'CMD' serial protocol of many generic fixed UHF readers.

Frame: 0xA0, length (bytes after it), reader address, command, data, checksum; the checksum is the
two's complement of the sum of every byte before it, the 0xA0 head included.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from device_drivers.framing import StreamDecoder
from device_drivers.rfid.protocol import Command, CommandRefused, ReaderProtocol
from device_drivers.types import TagRead

HEAD = 0xA0
CMD_SET_WORK_ANTENNA = 0x74
CMD_SET_OUTPUT_POWER = 0x76
CMD_REAL_TIME_INVENTORY = 0x89
CMD_GET_INVENTORY_BUFFER = 0x90
SUCCESS = 0x10
RSSI_OFFSET = 129  # dBm = raw - 129

ERRORS = {0x11: "fail", 0x20: "MCU reset error", 0x22: "tag inventory error", 0x31: "no tag / inventory error",
          0x36: "antenna missing", 0x38: "buffer is empty", 0x41: "parameter invalid",
          0x4C: "output power out of range", 0x3B: "invalid antenna"}


def checksum(data: bytes | bytearray) -> int:
    return (-sum(data)) & 0xFF


def frequency_khz(index: int) -> int | None:
    """Frequency points: 0-6 ETSI 865.0-868.0 MHz, 7-59 FCC 902.0-928.0 MHz, in 500 kHz steps."""
    if index <= 6:
        return 865_000 + 500 * index
    if index <= 59:
        return 902_000 + 500 * (index - 7)
    return None


def _pc_epc_bytes(pc: int) -> int:
    return ((pc >> 11) & 0x1F) * 2


class ReaderError(CommandRefused):
    def __init__(self, command: int, code: int) -> None:
        self.code = code
        super().__init__(command, code, f"reader answered command 0x{command:02X} with 0x{code:02X}: "
                                        f"{ERRORS.get(code, 'unknown')}")


class R2000Decoder(StreamDecoder[TagRead]):
    """Reader → host frames: real-time inventory tags and inventory-buffer tags become TagReads;
    one-byte answers to commands go to `responses` (0x10 success as status 0)."""

    def __init__(self, reader: str = "") -> None:
        super().__init__()
        self.reader = reader
        self.errors: list[ReaderError] = []

    HEADER = HEAD

    def _length(self, buf: bytearray, pos: int) -> int | None:
        if len(buf) <= pos + 1:
            return None
        return max(buf[pos + 1] + 2, 5)  # a length below 3 cannot be a frame: its checksum will fail

    def _valid(self, buf: bytearray, pos: int, total: int) -> bool:
        return buf[pos + 1] >= 3 and checksum(buf[pos:pos + total - 1]) == buf[pos + total - 1]

    def _decode(self, frame: bytes) -> list[TagRead]:
        command, data = frame[3], frame[4:-1]
        if len(data) == 1:  # a one-byte answer is a status: success or an error code
            self.responses.append((command, 0 if data[0] == SUCCESS else data[0], b""))
            if data[0] != SUCCESS:
                self.errors.append(ReaderError(command, data[0]))
                del self.errors[:-16]
                self.bad_frames["reader error"] += 1
            return []
        if command == CMD_REAL_TIME_INVENTORY:
            return self._real_time(data)
        if command == CMD_GET_INVENTORY_BUFFER:
            return self._buffer(data)
        return []

    def _real_time(self, data: bytes) -> list[TagRead]:
        freq_ant, pc = data[0], int.from_bytes(data[1:3], "big")
        n = _pc_epc_bytes(pc)
        if len(data) != 1 + 2 + n + 1:
            return []  # the end-of-round summary (antenna, read rate, total reads)
        return [TagRead(epc=data[3:3 + n].hex().upper(), antenna=(freq_ant & 0x03) + 1,
                        rssi_dbm=float(data[-1] - RSSI_OFFSET),
                        read_at=datetime.now(UTC), reader=self.reader, frequency_khz=frequency_khz(freq_ant >> 2))]

    def _buffer(self, data: bytes) -> list[TagRead]:
        length = data[2]
        tag = data[3:3 + length]  # PC, EPC, CRC
        rssi, freq_ant = data[3 + length], data[4 + length]
        return [TagRead(epc=tag[2:-2].hex().upper(), antenna=(freq_ant & 0x03) + 1, rssi_dbm=float(rssi - RSSI_OFFSET),
                        read_at=datetime.now(UTC), reader=self.reader, frequency_khz=frequency_khz(freq_ant >> 2))]


def frame(address: int, command: int, data: bytes = b"") -> bytes:
    body = bytes([HEAD, len(data) + 3, address, command]) + data
    return body + bytes([checksum(body)])


def real_time_inventory(address: int = 1, repeat: int = 1) -> bytes:
    return frame(address, CMD_REAL_TIME_INVENTORY, bytes([repeat]))


def set_output_power(dbm: int, address: int = 1) -> bytes:
    if not 0 <= dbm <= 33:
        raise ValueError("R2000 output power is 0..33 dBm")
    return frame(address, CMD_SET_OUTPUT_POWER, bytes([dbm]))


def set_work_antenna(antenna: int, address: int = 1) -> bytes:
    if not 1 <= antenna <= 4:
        raise ValueError("R2000 antennas are 1..4")
    return frame(address, CMD_SET_WORK_ANTENNA, bytes([antenna - 1]))


def tag_frame(epc_hex: str, antenna: int, rssi_dbm: int, freq_index: int = 26, address: int = 1) -> bytes:
    """A real-time inventory tag reply as the reader sends it (for simulators and tests)."""
    epc = bytes.fromhex(epc_hex)
    pc = ((len(epc) // 2) << 11).to_bytes(2, "big")
    return frame(address, CMD_REAL_TIME_INVENTORY,
                 bytes([(freq_index << 2) | (antenna - 1)]) + pc + epc + bytes([rssi_dbm + RSSI_OFFSET]))


def configure(region: str, power_dbm: Mapping[int, float]) -> list[Command]:
    """Output power (one for all ports: the highest asked for) and the work antenna. The region is
    the reader's factory setting."""
    power, first = round(max(power_dbm.values())), next(iter(power_dbm))
    return [Command(f"output power {power} dBm", set_output_power(power), CMD_SET_OUTPUT_POWER),
            Command(f"work antenna {first}", set_work_antenna(first), CMD_SET_WORK_ANTENNA)]


PROTOCOL = ReaderProtocol("impinj-r2000", R2000Decoder, configure, refused=ReaderError)
