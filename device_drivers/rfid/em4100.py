"""125 kHz EM4100 readers (RDM6300 and alike), for vehicle and driver cards.

Frame: STX (0x02), 10 ASCII hex (version byte + 32-bit id), 2 ASCII hex checksum (XOR of the five
data bytes), ETX (0x03).
"""

from __future__ import annotations

import functools
import operator
from datetime import UTC, datetime

from device_drivers.framing import StreamDecoder
from device_drivers.rfid.protocol import ReaderProtocol
from device_drivers.types import TagRead

STX, ETX = 0x02, 0x03
FRAME_LEN = 14
_HEX = frozenset(b"0123456789ABCDEFabcdef")


def encode(card_hex: str) -> bytes:
    data = bytes.fromhex(card_hex)
    if len(data) != 5:
        raise ValueError("an EM4100 id is 5 bytes (10 hex digits)")
    check = functools.reduce(operator.xor, data)
    return bytes([STX]) + f"{card_hex.upper()}{check:02X}".encode() + bytes([ETX])


class Em4100Decoder(StreamDecoder[TagRead]):
    def __init__(self, reader: str = "") -> None:
        super().__init__()
        self.reader = reader

    HEADER = STX

    def _length(self, buf: bytearray, pos: int) -> int | None:
        return FRAME_LEN

    def _valid(self, buf: bytearray, pos: int, total: int) -> bool:
        frame = buf[pos:pos + total]
        if frame[-1] != ETX or not set(frame[1:13]) <= _HEX:
            return False
        return functools.reduce(operator.xor, bytes.fromhex(frame[1:11].decode())) == int(frame[11:13].decode(), 16)

    def _decode(self, frame: bytes) -> list[TagRead]:
        return [TagRead(epc=frame[1:11].decode().upper(), antenna=1, rssi_dbm=None, read_at=datetime.now(UTC),
                        reader=self.reader)]


PROTOCOL = ReaderProtocol("em4100", Em4100Decoder)
