"""NMEA 0183 from a GPS receiver → one `Fix` per epoch, on pynmea2.

Framing (lines, the checksum) is ours: pynmea2 accepts sentences without a checksum, so a line
without a valid `*hh` is rejected before pynmea2 sees it. A receiver reports one epoch in several
sentences (RMC, GGA, ...) carrying the same UTC time; they are merged, in either order, and the
epoch is emitted when a sentence of the next epoch arrives (or at flush).
"""

from __future__ import annotations

import contextlib
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


def _int(value: object) -> int | None:
    number = _num(value)
    return int(number) if number is not None else None


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
        handler = _HANDLERS.get(kind)
        if handler is None:
            self.skipped[kind] += 1  # GSV, TXT, proprietary ($P...) and anything unknown
            return []
        utc = getattr(msg, "timestamp", None) if kind not in _UNTIMED else None
        out: list[Fix] = []
        if utc is not None:
            if not isinstance(utc, time):
                self.bad_frames["no time"] += 1
                return []
            if self._epoch is not None and self._epoch.utc != utc:
                out = self._emit()
            if self._epoch is None:
                self._epoch = _Epoch(utc=utc)
        elif self._epoch is None:
            self.skipped[f"{kind} outside an epoch"] += 1
            return []
        try:
            handler(msg, self._epoch)
        except ValueError:  # a field pynmea2 cannot read (a corrupted byte the checksum let through)
            self.bad_frames["bad field"] += 1
            self._epoch.valid = False
        return out

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


# --- what each sentence contributes to its epoch -------------------------------------------------
# Fields come from pynmea2's sentence classes; a missing field never overwrites a present one.

def _position(msg: pynmea2.NMEASentence, epoch: _Epoch) -> None:
    # pynmea2 turns empty coordinates into 0.0: only trust fields that are really there.
    if msg.lat and msg.lon and msg.lat_dir in ("N", "S") and msg.lon_dir in ("E", "W"):
        epoch.values["lat"], epoch.values["lon"] = msg.latitude, msg.longitude


def _set(epoch: _Epoch, **values: float | int | None) -> None:
    for key, value in values.items():
        if value is not None and epoch.values.get(key) is None:
            epoch.values[key] = value


def _knots(value: object) -> float | None:
    speed = _num(value)
    return speed * KNOTS_TO_KMH if speed is not None else None


def _rmc(msg: pynmea2.RMC, epoch: _Epoch) -> None:
    mode = msg.mode_indicator if len(msg.data) > 11 else None
    if msg.status != "A" or mode == "N":
        epoch.valid = False
    if isinstance(msg.datestamp, date):
        epoch.day = msg.datestamp
    _position(msg, epoch)
    _set(epoch, speed_kmh=_knots(msg.spd_over_grnd), course_deg=_num(msg.true_course))


def _gga(msg: pynmea2.GGA, epoch: _Epoch) -> None:
    quality = _int(msg.gps_qual) or 0
    if quality == 0:
        epoch.valid = False
    _position(msg, epoch)
    _set(epoch, quality=quality, hdop=_num(msg.horizontal_dil), alt_m=_num(msg.altitude), sats=_int(msg.num_sats))


def _gns(msg: pynmea2.GNS, epoch: _Epoch) -> None:
    # One mode letter per constellation: no fix only when every one says N.
    if not msg.mode_indicator or set(msg.mode_indicator) <= {"N"}:
        epoch.valid = False
    _position(msg, epoch)
    _set(epoch, hdop=_num(msg.hdop), alt_m=_num(msg.altitude), sats=_int(msg.num_sats))


def _gll(msg: pynmea2.GLL, epoch: _Epoch) -> None:
    mode = msg.faa_mode if len(msg.data) > 6 else None
    if msg.status != "A" or mode == "N":
        epoch.valid = False
    _position(msg, epoch)


def _vtg(msg: pynmea2.VTG, epoch: _Epoch) -> None:
    knots = _knots(msg.spd_over_grnd_kts)  # knots carry more digits than VTG's km/h field
    _set(epoch, speed_kmh=knots if knots is not None else _num(msg.spd_over_grnd_kmph),
         course_deg=_num(msg.true_track))


def _gsa(msg: pynmea2.GSA, epoch: _Epoch) -> None:
    _set(epoch, hdop=_num(msg.hdop))


def _zda(msg: pynmea2.ZDA, epoch: _Epoch) -> None:
    with contextlib.suppress(TypeError, ValueError):
        epoch.day = date(int(msg.year), int(msg.month), int(msg.day))


_HANDLERS = {"RMC": _rmc, "GGA": _gga, "GNS": _gns, "GLL": _gll, "VTG": _vtg, "GSA": _gsa, "ZDA": _zda}
_UNTIMED = {"VTG", "GSA"}
