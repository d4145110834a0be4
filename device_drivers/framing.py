"""Shared base of binary stream decoders: a bounded buffer, resynchronisation and bad-frame counters.

Framing (cutting the byte stream into frames, checking them) is kept apart from decoding a frame's
meaning: subclasses implement `_cut` to find one frame and `_decode` to turn it into values.
"""

from __future__ import annotations

from collections import Counter
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

    def _cut(self, buf: bytearray) -> tuple[int, bytes | None, str | None] | None:
        """Find the next frame at the start of buf: (bytes consumed, frame or None, bad reason or None),
        or None when more bytes are needed."""
        raise NotImplementedError

    def _decode(self, frame: bytes) -> list[T]:
        raise NotImplementedError
