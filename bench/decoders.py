"""Decoder throughput on one core, as ratios against baselines measured in the same run.

    python -m bench.decoders [--seconds 3]

- NMEA: `NmeaDecoder.feed` vs `pynmea2.parse` alone on the same sentences (our overhead).
- Mercury and R2000: frames/s through `feed`, and the ratio to a bare loop that only slices frames.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pynmea2

from device_drivers.gps import NmeaDecoder
from device_drivers.rfid import decoder_for, mercury, r2000
from device_drivers.simulators import drive


def rate(work: Callable[[], int], seconds: float) -> float:
    """Items per second of `work` (which returns the items it did), best of repeated runs."""
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        items = work()
        best = max(best, items / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    seconds = parser.parse_args().seconds

    epochs = list(drive([(31.20, 121.40), (31.30, 121.50)], 60, start=datetime(2026, 1, 1, tzinfo=UTC)))[:2000]
    stream = b"".join(epochs)
    lines = [line.decode().strip() for line in stream.splitlines()]

    def ours() -> int:
        decoder = NmeaDecoder()
        decoder.feed(stream)
        decoder.flush()
        return len(lines)

    def baseline() -> int:
        for line in lines:
            pynmea2.parse(line)
        return len(lines)

    nmea_ours, nmea_base = rate(ours, seconds), rate(baseline, seconds)
    print(f"NMEA      NmeaDecoder {nmea_ours:10,.0f} sentences/s   pynmea2.parse alone {nmea_base:10,.0f}/s"
          f"   overhead {nmea_base / nmea_ours:.2f}x")

    frames = {
        "Mercury": ([mercury.tag_record_frame(f"3074257BF7194E40{i:08X}", 1 + i % 4, -40 - i % 40)
                     for i in range(5000)], "thingmagic-mercury"),
        "R2000": ([r2000.tag_frame(f"3074257BF7194E40{i:08X}", 1 + i % 4, -40 - i % 40) for i in range(5000)],
                  "impinj-r2000"),
    }
    for name, (items, protocol) in frames.items():
        blob = b"".join(items)

        def decode(blob: bytes = blob, protocol: str = protocol, n: int = len(items)) -> int:
            decoder = decoder_for(protocol)
            for i in range(0, len(blob), 4096):  # serial reads arrive in chunks
                decoder.feed(blob[i:i + 4096])
            return n

        def slice_only(items: list[bytes] = items) -> int:
            return sum(1 for frame in items if frame[:1])

        ours_rate, floor = rate(decode, seconds), rate(slice_only, seconds)
        print(f"{name:9} feed        {ours_rate:10,.0f} frames/s      bare slicing loop   {floor:10,.0f}/s"
              f"   ratio {floor / ours_rate:.1f}x")


if __name__ == "__main__":
    main()
