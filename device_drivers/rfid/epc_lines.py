"""Line-oriented readers (USB-CDC 'keyboard' readers): one EPC in hex per line."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from device_drivers.framing import StreamDecoder
from device_drivers.rfid.protocol import ReaderProtocol
from device_drivers.types import TagRead

MAX_LINE = 130  # 496-bit EPC in hex plus CR LF
_EPC = re.compile(rb"^(?:[0-9A-Fa-f]{4}){1,31}$")


class EpcLinesDecoder(StreamDecoder[TagRead]):
    def __init__(self, reader: str = "") -> None:
        super().__init__(max_buffer=MAX_LINE)
        self.reader = reader

    def _cut(self, buf: bytearray) -> tuple[int, bytes | None, str | None] | None:
        end = buf.find(b"\n")
        if end < 0:
            return None
        line = bytes(buf[:end]).strip()
        if not line:
            return end + 1, None, None
        if not _EPC.match(line):
            return end + 1, None, "not an EPC"
        return end + 1, line, None

    def _decode(self, frame: bytes) -> list[TagRead]:
        return [TagRead(epc=frame.decode().upper(), antenna=1, rssi_dbm=None, read_at=datetime.now(UTC),
                        reader=self.reader)]


PROTOCOL = ReaderProtocol("epc-lines", EpcLinesDecoder)
