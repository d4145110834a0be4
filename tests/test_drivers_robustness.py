"""Every decoder survives garbage: never raises, never grows its buffer past the bound, and finds the
next good frame. A seeded fuzz of over a million random and mutated bytes per decoder."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.framing import MAX_BUFFER
from device_drivers.gps import MAX_LINE, NmeaDecoder
from device_drivers.rfid import decoder_for, em4100, mercury, r2000
from device_drivers.simulators import fix_sentences
from tests.test_drivers_gps import ts_example

GOOD: dict[str, tuple[bytes, Callable[[], object]]] = {
    "thingmagic-mercury": (mercury.tag_record_frame("3074257BF7194E4000001A85", 1, -50),
                           lambda: decoder_for("thingmagic-mercury")),
    "impinj-r2000": (r2000.tag_frame("3074257BF7194E4000001A85", 2, -60), lambda: decoder_for("impinj-r2000")),
    "em4100": (em4100.encode("67003B51C6"), lambda: decoder_for("em4100")),
    "epc-lines": (b"3074257BF7194E4000001A85\r\n", lambda: decoder_for("epc-lines")),
    "nmea": (fix_sentences(ts_example, 52.5, 13.4, 10, 10), NmeaDecoder),
}


def _buffered(decoder: object) -> int:
    return decoder.buffered  # type: ignore[attr-defined]


def _bound(name: str) -> int:
    return MAX_LINE if name == "nmea" else MAX_BUFFER


@pytest.mark.parametrize("name", GOOD)
@settings(max_examples=200, deadline=None)
@given(noise=st.binary(max_size=1500), piece=st.integers(1, 300))
def test_garbage_then_a_good_frame(name: str, noise: bytes, piece: int) -> None:
    good, make = GOOD[name]
    decoder = make()
    stream = noise + b"\r\n" + good + good  # a line end ends a torn line; two frames, in case one is swallowed
    found = []
    for i in range(0, len(stream), piece):
        found += decoder.feed(stream[i:i + piece])
        assert _buffered(decoder) <= _bound(name)
    found += decoder.flush()
    assert found, f"{name}: the good frame after garbage was lost"


@pytest.mark.parametrize("name", GOOD)
def test_a_million_random_and_mutated_bytes(name: str) -> None:
    good, make = GOOD[name]
    rng = random.Random(20261128)
    decoder = make()
    fed = 0
    while fed < 1_000_000:
        if rng.random() < 0.5:
            chunk = rng.randbytes(rng.randint(1, 512))
        else:  # a good frame with a few bytes flipped, cut short or doubled
            chunk = bytearray(good * rng.randint(1, 3))
            for _ in range(rng.randint(0, 3)):
                chunk[rng.randrange(len(chunk))] = rng.randrange(256)
            chunk = bytes(chunk[: rng.randint(1, len(chunk))])
        decoder.feed(chunk)
        fed += len(chunk)
        assert _buffered(decoder) <= _bound(name)
    decoder.flush()
    assert sum(decoder.bad_frames.values()) > 0  # the garbage was seen and counted, not silently taken
