"""gpsd's JSON protocol (TCP 2947): the receiver a Linux box already shares through gpsd, read as
`Fix`es. After `WATCH` (sent on connect) gpsd streams one JSON object per line; a `TPV` with a 2D or 3D
fix is a fix, a `SKY` gives the satellites used and the HDOP that the next fixes carry. Other classes
(VERSION, DEVICES, WATCH, ...) are skipped."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime
from typing import Any

from device_drivers.types import Fix

WATCH = b'?WATCH={"enable":true,"json":true};\n'
MAX_LINE = 16_384  # a SKY with every satellite of four constellations fits
MS_TO_KMH = 3.6


class GpsdDecoder:
    """`feed(bytes) -> list[Fix]` with bytes in any pieces; `bad_frames` by reason."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.bad_frames: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self._hdop: float | None = None
        self._sats: int | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Fix]:
        self._buf += data
        fixes = []
        while (end := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[:end]).strip()
            del self._buf[:end + 1]
            if line:
                fix = self._line(line)
                if fix is not None:
                    fixes.append(fix)
        if len(self._buf) > MAX_LINE:
            self.bad_frames["overlong line"] += 1
            self._buf.clear()
        return fixes

    def flush(self) -> list[Fix]:
        if self._buf:
            self.bad_frames["truncated"] += 1
            self._buf.clear()
        return []

    def _line(self, line: bytes) -> Fix | None:
        try:
            report = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            self.bad_frames["not JSON"] += 1
            return None
        kind = report.get("class") if isinstance(report, dict) else None
        if kind == "SKY":
            self._sky(report)
            return None
        if kind != "TPV":
            self.skipped[str(kind)] += 1
            return None
        try:
            return self._tpv(report)
        except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: int() of an infinity
            self.bad_frames["bad TPV"] += 1
            return None

    def _sky(self, report: dict[str, Any]) -> None:
        hdop, used = report.get("hdop"), report.get("uSat")
        if used is None and isinstance(report.get("satellites"), list):
            used = sum(1 for s in report["satellites"] if isinstance(s, dict) and s.get("used"))
        # JSON from a socket may say NaN or Infinity: such a value is no reading, the last one stands
        self._hdop = float(hdop) if isinstance(hdop, int | float) and math.isfinite(hdop) else self._hdop
        self._sats = int(used) if isinstance(used, int | float) and math.isfinite(used) else self._sats

    def _tpv(self, report: dict[str, Any]) -> Fix | None:
        if report.get("mode", 0) < 2 or "time" not in report or "lat" not in report or "lon" not in report:
            self.skipped["TPV without a fix"] += 1
            return None
        ts = datetime.fromisoformat(str(report["time"]).replace("Z", "+00:00"))
        if ts.tzinfo is None:
            raise ValueError("a time without a zone")
        lat, lon = float(report["lat"]), float(report["lon"])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError("a position off the globe")
        speed, track = report.get("speed"), report.get("track")
        altitude = report.get("altMSL", report.get("alt"))
        if not all(math.isfinite(float(v)) for v in (speed, track, altitude) if v is not None):
            raise ValueError("a speed, course or altitude that is not a number")
        return Fix(ts=ts, lat=lat, lon=lon, speed_kmh=float(speed) * MS_TO_KMH if speed is not None else None,
                   course_deg=float(track) if track is not None else None, hdop=self._hdop, sats=self._sats,
                   quality=int(report.get("status", 1)) or 1, alt_m=float(altitude) if altitude is not None else None)
