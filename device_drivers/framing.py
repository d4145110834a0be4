"""Shared base of binary stream decoders: a bounded buffer, resynchronisation and bad-frame counters.

Framing (cutting the byte stream into frames, checking them) is kept apart from decoding a frame's
meaning. Binary protocols with a start byte describe their frames (`HEADER`, `_length`, `_valid`) and
inherit the resynchronisation; others implement `_cut` themselves. `_decode` turns a frame into values.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_BUFFER = 4096  # larger than any frame of the supported protocols; garbage never grows memory


class StreamDecoder(Generic[T]):
    """`feed(bytes)` in arbitrary pieces, `flush()` at end of stream, `bad_frames` by reason."""

    def __init__(self, max_buffer: int = MAX_BUFFER) -> None:
        self._buf = bytearray()
        self._max = max_buffer
        self.bad_frames: Counter[str] = Counter()
        self.frames = 0
        # Answers to the host's commands, for protocols that take them: (command, status (0: accepted), data).
        self.responses: deque[tuple[int, int, bytes]] = deque(maxlen=64)

    def feed(self, data: bytes) -> list[T]:
        self._buf += data
        out: list[T] = []
        while True:
            result = self._cut(self._buf)
            if result is None:
                break
            consumed, frame, reason = result
            del self._buf[:consumed]
            if reason:
                self.bad_frames[reason] += 1
            elif frame is not None:
                self.frames += 1
                try:
                    out.extend(self._decode(frame))
                except (ValueError, IndexError) as exc:
                    self.bad_frames[f"undecodable: {type(exc).__name__}"] += 1
        if len(self._buf) > self._max:
            self.bad_frames["overflow"] += 1
            del self._buf[: len(self._buf) - self._max]
        return out

    def flush(self) -> list[T]:
        if self._buf:
            self.bad_frames["truncated"] += 1
            self._buf.clear()
        return []

    @property
    def buffered(self) -> int:
        return len(self._buf)

    HEADER = -1
    BAD = "bad checksum"

    def _length(self, buf: bytearray, pos: int) -> int | None:
        """Total length of the frame starting at pos; None while too few bytes have arrived to tell."""
        raise NotImplementedError

    def _valid(self, buf: bytearray, pos: int, total: int) -> bool:
        raise NotImplementedError

    def _cut(self, buf: bytearray) -> tuple[int, bytes | None, str | None] | None:
        """Find the next frame at the start of buf: (bytes consumed, frame or None, bad reason or None),
        or None when more bytes are needed."""
        start = buf.find(self.HEADER)
        if start != 0:
            return (start if start > 0 else len(buf), None, "garbage") if buf else None
        total = self._length(buf, 0)
        if total is None or len(buf) < total:
            # A start byte in noise can announce a long frame and swallow real ones: if a complete,
            # valid frame already starts further on, this one was noise.
            later = self._next_valid_frame(buf)
            return (later, None, "garbage") if later else None
        if not self._valid(buf, 0, total):
            return 1, None, self.BAD  # skip this start byte only: the next frame may begin inside
        return total, bytes(buf[:total]), None

    def _next_valid_frame(self, buf: bytearray) -> int | None:
        pos = buf.find(self.HEADER, 1)
        while pos > 0:
            total = self._length(buf, pos)
            if total is not None and pos + total <= len(buf) and self._valid(buf, pos, total):
                return pos
            pos = buf.find(self.HEADER, pos + 1)
        return None

    def _decode(self, frame: bytes) -> list[T]:
        raise NotImplementedError
