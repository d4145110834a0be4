"""NMEA 0183 from a GPS receiver → one `Fix` per epoch, on pynmea2.

Framing (lines, the checksum) is ours: pynmea2 accepts sentences without a checksum, so a line
without a valid `*hh` is rejected before pynmea2 sees it. A receiver reports one epoch in several
sentences (RMC, GGA, ...) carrying the same UTC time; they are merged, in either order, and the
epoch is emitted when a sentence of the next epoch arrives (or at flush).
"""

from __future__ import annotations

import functools
import operator
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pynmea2

from device_drivers.types import Fix

MAX_LINE = 200  # NMEA says 82; some receivers send longer proprietary lines
KNOTS_TO_KMH = 1.852


def checksum_ok(line: str) -> bool:
    """`$...*hh` with hh the XOR of everything between `$` and `*`."""
    star = line.rfind("*")
    if not line.startswith("$") or star < 0 or len(line) != star + 3:
        return False
    try:
        expected = int(line[star + 1:], 16)
    except ValueError:
        return False
    return functools.reduce(operator.xor, line[1:star].encode("ascii", "replace"), 0) == expected


@dataclass
class _Epoch:
    utc: time
    valid: bool = True
    day: date | None = None
    values: dict[str, float | int | None] = field(default_factory=dict)


def _num(value: object) -> float | None:
    try:
        return float(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class NmeaDecoder:
    """`feed(bytes) -> list[Fix]` with bytes in arbitrary pieces; `flush()` at end of stream."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._epoch: _Epoch | None = None
        self._day: date | None = None
        self._last_utc: time | None = None
        self.bad_frames: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()

    def feed(self, data: bytes) -> list[Fix]:
        self._buf += data
        fixes: list[Fix] = []
        while (end := self._buf.find(b"\n")) >= 0:
            raw = bytes(self._buf[:end])
            del self._buf[:end + 1]
            fixes.extend(self._line(raw))
        if len(self._buf) > MAX_LINE:
            self.bad_frames["overlong line"] += 1
            self._buf.clear()
        return fixes

    def flush(self) -> list[Fix]:
        out = self._emit()
        if self._buf:
            self.bad_frames["truncated"] += 1
            self._buf.clear()
        return out

    def _line(self, raw: bytes) -> list[Fix]:
        text = raw.decode("ascii", "replace").strip()
        # A sentence spliced after a truncated one: resynchronise on the last '$' (gpsd does likewise).
        start = text.rfind("$")
        if start < 0:
            if text:
                self.bad_frames["no sentence"] += 1
            return []
        text = text[start:]
        if not checksum_ok(text):
            self.bad_frames["bad checksum"] += 1
            return []
        try:
            msg = pynmea2.parse(text, check=True)
        except (pynmea2.ParseError, ValueError, TypeError, AttributeError):
            self.bad_frames["unparsable"] += 1
            return []
        kind = type(msg).__name__
        if kind not in ("RMC", "GGA"):
            self.skipped[kind] += 1
            return []
        utc = getattr(msg, "timestamp", None)
        if not isinstance(utc, time):
            self.bad_frames["no time"] += 1
            return []
        out = self._emit() if self._epoch is not None and self._epoch.utc != utc else []
        if self._epoch is None:
            self._epoch = _Epoch(utc=utc)
        (self._rmc if kind == "RMC" else self._gga)(msg, self._epoch)
        return out

    def _rmc(self, msg: pynmea2.RMC, epoch: _Epoch) -> None:
        mode = getattr(msg, "mode_indicator", None) if len(msg.data) > 11 else None
        if msg.status != "A" or mode == "N":
            epoch.valid = False
        if isinstance(msg.datestamp, date):
            epoch.day = msg.datestamp
        self._position(msg, epoch)
        speed = _num(msg.spd_over_grnd)
        epoch.values["speed_kmh"] = speed * KNOTS_TO_KMH if speed is not None else None
        epoch.values["course_deg"] = _num(msg.true_course)

    def _gga(self, msg: pynmea2.GGA, epoch: _Epoch) -> None:
        quality = int(msg.gps_qual) if str(msg.gps_qual or "").isdigit() else 0
        if quality == 0:
            epoch.valid = False
        self._position(msg, epoch)
        epoch.values.update(quality=quality, hdop=_num(msg.horizontal_dil), alt_m=_num(msg.altitude))
        sats = _num(msg.num_sats)
        epoch.values["sats"] = int(sats) if sats is not None else None

    @staticmethod
    def _position(msg: pynmea2.NMEASentence, epoch: _Epoch) -> None:
        # pynmea2 turns empty coordinates into 0.0: only trust fields that are really there.
        if msg.lat and msg.lon and msg.lat_dir in ("N", "S") and msg.lon_dir in ("E", "W"):
            epoch.values["lat"], epoch.values["lon"] = msg.latitude, msg.longitude

    def _emit(self) -> list[Fix]:
        epoch, self._epoch = self._epoch, None
        if epoch is None:
            return []
        if epoch.day is not None:
            self._day = epoch.day
        elif self._day is not None and self._last_utc is not None and epoch.utc < self._last_utc:
            self._day += timedelta(days=1)  # a GGA-only epoch just after midnight
        self._last_utc = epoch.utc
        v = epoch.values
        if not epoch.valid or self._day is None or "lat" not in v:
            return []
        ts = datetime.combine(self._day, epoch.utc.replace(tzinfo=None), tzinfo=UTC)
        return [Fix(ts=ts, lat=float(v["lat"]), lon=float(v["lon"]),  # type: ignore[arg-type]
                    speed_kmh=v.get("speed_kmh"), course_deg=v.get("course_deg"), hdop=v.get("hdop"),
                    sats=v.get("sats"), quality=v.get("quality"), alt_m=v.get("alt_m"))]  # type: ignore[arg-type]
