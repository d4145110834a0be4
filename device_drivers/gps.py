"""NMEA 0183 from a GPS receiver → one `Fix` per epoch, on pynmea2.

pynmea2 cuts a sentence into its declared fields and checks its checksum; parsing is strict
(`check=True`), because by default pynmea2 accepts a sentence that has no checksum at all. A receiver
reports one epoch in several sentences (RMC, GGA, GNS, GLL with the time; VTG, GSA without) which are
merged, in any order; the epoch is emitted when a sentence of the next epoch arrives (or at flush).
Fields are read by name from pynmea2's field tables, and coordinates only where they are really
there (pynmea2's own accessors turn an empty latitude into 0.0).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pynmea2

from device_drivers.types import Fix

MAX_LINE = 200  # NMEA says 82; some receivers send longer proprietary lines
KNOTS_TO_KMH = 1.852


@dataclass
class _Epoch:
    utc: time
    valid: bool = True
    day: date | None = None
    values: dict[str, float | int] = field(default_factory=dict)

    def set(self, **values: float | int | None) -> None:
        """Fill what is still unknown: the first sentence to report a value wins."""
        for key, value in values.items():
            if value is not None and key not in self.values:
                self.values[key] = value


class NmeaDecoder:
    """`feed(bytes) -> list[Fix]` with bytes in arbitrary pieces; `flush()` at end of stream."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._epoch: _Epoch | None = None
        self._day: date | None = None
        self._last_utc: time | None = None
        self.bad_frames: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()

    @property
    def buffered(self) -> int:
        return len(self._buf)

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
        # '$$GPGGA…' and a sentence spliced after a truncated one: resynchronise on the last '$', as gpsd does.
        start = text.rfind("$")
        if start < 0:
            if text:
                self.bad_frames["no sentence"] += 1
            return []
        try:
            msg = pynmea2.parse(text[start:], check=True)
        except pynmea2.ChecksumError:
            self.bad_frames["bad checksum"] += 1
            return []
        except (pynmea2.ParseError, ValueError, TypeError, AttributeError):
            self.bad_frames["unparsable"] += 1
            return []
        kind = type(msg).__name__
        handler = _HANDLERS.get(kind)
        if handler is None:
            self.skipped[kind] += 1  # GSV, TXT, proprietary ($P...) and anything unknown
            return []
        out: list[Fix] = []
        if kind not in _UNTIMED:
            utc = _utc(_field(msg, "timestamp"))
            if utc is None:
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
        except ValueError:  # a malformed field that the checksum did not catch
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
            self._day += timedelta(days=1)  # an epoch without a date just after midnight
        self._last_utc = epoch.utc
        v = epoch.values
        if not epoch.valid or self._day is None or "lat" not in v:
            return []
        return [Fix(ts=datetime.combine(self._day, epoch.utc, tzinfo=UTC), lat=float(v["lat"]), lon=float(v["lon"]),
                    speed_kmh=v.get("speed_kmh"), course_deg=v.get("course_deg"), hdop=v.get("hdop"),
                    sats=v.get("sats"), quality=v.get("quality"), alt_m=v.get("alt_m"))]  # type: ignore[arg-type]


# --- fields ---------------------------------------------------------------------------------------

def _field(msg: pynmea2.NMEASentence, name: str) -> str:
    index = type(msg).name_to_idx[name]
    return msg.data[index] if index < len(msg.data) else ""


def _num(value: str) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _int(value: str) -> int | None:
    number = _num(value)
    return int(number) if number is not None else None


def _utc(value: str) -> time | None:
    """hhmmss[.sss]"""
    if len(value) < 6 or not value[:6].isdigit():
        return None
    try:
        seconds = float(value[4:])
        whole = int(seconds)
        return time(int(value[:2]), int(value[2:4]), whole, min(999_999, round((seconds - whole) * 1e6)))
    except ValueError:
        return None


def _coordinate(value: str, hemisphere: str, negative: str) -> float:
    """(d)ddmm.mmmm and N/S or E/W → signed degrees."""
    number = float(value)
    degrees = int(number // 100)
    result = degrees + (number - degrees * 100) / 60
    return -result if hemisphere == negative else result


def _position(msg: pynmea2.NMEASentence, epoch: _Epoch) -> None:
    lat, ns, lon, ew = (_field(msg, n) for n in ("lat", "lat_dir", "lon", "lon_dir"))
    if lat and lon and ns in ("N", "S") and ew in ("E", "W"):
        epoch.values["lat"], epoch.values["lon"] = _coordinate(lat, ns, "S"), _coordinate(lon, ew, "W")


def _knots(value: str) -> float | None:
    speed = _num(value)
    return speed * KNOTS_TO_KMH if speed is not None else None


# --- what each sentence contributes to its epoch -------------------------------------------------

def _rmc(msg: pynmea2.RMC, epoch: _Epoch) -> None:
    if _field(msg, "status") != "A" or _field(msg, "mode_indicator") == "N":
        epoch.valid = False
    ddmmyy = _field(msg, "datestamp")
    if len(ddmmyy) == 6 and ddmmyy.isdigit():
        epoch.day = date(2000 + int(ddmmyy[4:]), int(ddmmyy[2:4]), int(ddmmyy[:2]))
    _position(msg, epoch)
    epoch.set(speed_kmh=_knots(_field(msg, "spd_over_grnd")), course_deg=_num(_field(msg, "true_course")))


def _gga(msg: pynmea2.GGA, epoch: _Epoch) -> None:
    quality = _int(_field(msg, "gps_qual")) or 0
    if quality == 0:
        epoch.valid = False
    _position(msg, epoch)
    epoch.set(quality=quality, hdop=_num(_field(msg, "horizontal_dil")), alt_m=_num(_field(msg, "altitude")),
              sats=_int(_field(msg, "num_sats")))


def _gns(msg: pynmea2.GNS, epoch: _Epoch) -> None:
    # One mode letter per constellation: no fix only when every one says N.
    if set(_field(msg, "mode_indicator")) <= {"N"}:
        epoch.valid = False
    _position(msg, epoch)
    epoch.set(hdop=_num(_field(msg, "hdop")), alt_m=_num(_field(msg, "altitude")), sats=_int(_field(msg, "num_sats")))


def _gll(msg: pynmea2.GLL, epoch: _Epoch) -> None:
    if _field(msg, "status") != "A" or _field(msg, "faa_mode") == "N":
        epoch.valid = False
    _position(msg, epoch)


def _vtg(msg: pynmea2.VTG, epoch: _Epoch) -> None:
    knots = _knots(_field(msg, "spd_over_grnd_kts"))  # knots carry more digits than VTG's km/h field
    epoch.set(speed_kmh=knots if knots is not None else _num(_field(msg, "spd_over_grnd_kmph")),
              course_deg=_num(_field(msg, "true_track")))


def _gsa(msg: pynmea2.GSA, epoch: _Epoch) -> None:
    epoch.set(hdop=_num(_field(msg, "hdop")))


def _zda(msg: pynmea2.ZDA, epoch: _Epoch) -> None:
    day, month, year = (_int(_field(msg, n)) for n in ("day", "month", "year"))
    if day and month and year:
        epoch.day = date(year, month, day)


_HANDLERS = {"RMC": _rmc, "GGA": _gga, "GNS": _gns, "GLL": _gll, "VTG": _vtg, "GSA": _gsa, "ZDA": _zda}
_UNTIMED = {"VTG", "GSA"}
