"""From fixes to a useful track: drop invalid fixes, thin without losing the shape, report gaps."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from device_drivers.types import Fix
from firmware_configs.profile import GpsFilter

EARTH_RADIUS_M = 6_371_000.0


def distance_m(a: Fix, b: Fix) -> float:
    """Great-circle distance (haversine); ample for fix-to-fix steps."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _heading_change(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0
    d = abs(a - b) % 360
    return min(d, 360 - d)


@dataclass
class TrackStats:
    """What track filters did; one shared by a fleet's filters keeps the gateway's totals O(1)."""

    accepted: int = 0
    gaps: int = 0
    reanchored: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


class TrackFilter:
    def __init__(self, settings: GpsFilter, stats: TrackStats | None = None) -> None:
        self.s = settings
        self.stats = stats or TrackStats()
        self._last_valid: Fix | None = None  # last fix that passed validity, for the jump check
        self._last_kept: Fix | None = None
        self._behind = 0  # fixes in a row not after the last valid one

    def offer(self, fix: Fix, now: datetime) -> tuple[bool, bool]:
        """(keep it?, is it stationary?); `now` is the gateway's clock as the fix arrives."""
        if fix.hdop is not None and fix.hdop > self.s.max_hdop:
            self.stats.dropped["hdop"] += 1
            return False, False
        prev = self._last_valid
        # Far ahead of both the last fix and the gateway's clock: a receiver fault that would hold back
        # every later fix. (Ahead of the clock alone is a gateway clock that is behind: GPS time wins.)
        if (prev is not None and (fix.ts - prev.ts).total_seconds() > self.s.max_ahead_s
                and (fix.ts - now).total_seconds() > self.s.max_ahead_s):
            self.stats.dropped["ahead of the gateway clock"] += 1
            return False, False
        if prev is not None and fix.ts <= prev.ts:
            self._behind += 1
            if self._behind < self.s.reanchor_after:
                self.stats.dropped["time not advancing"] += 1
                return False, False
            self.stats.reanchored += 1  # the last valid fix's time was the fault, not all of these
            prev = self._last_valid = self._last_kept = None
        self._behind = 0
        if prev is not None:
            dt = (fix.ts - prev.ts).total_seconds()
            if distance_m(prev, fix) / dt * 3.6 > self.s.max_speed_kmh:
                self.stats.dropped["jump"] += 1
                return False, False
            if dt > self.s.gap_s:
                self.stats.gaps += 1
        self._last_valid = fix
        stationary = (fix.speed_kmh or 0.0) < self.s.stationary_kmh
        kept = self._last_kept
        if kept is not None:
            elapsed = (fix.ts - kept.ts).total_seconds()
            if stationary:
                keep = elapsed >= self.s.stationary_period_s or (kept.speed_kmh or 0) >= self.s.stationary_kmh
            else:
                keep = (elapsed >= self.s.moving_period_s
                        or _heading_change(kept.course_deg, fix.course_deg) >= self.s.heading_change_deg
                        or distance_m(kept, fix) >= self.s.distance_m
                        or (kept.speed_kmh or 0) < self.s.stationary_kmh)  # starting to move
            if not keep:
                self.stats.dropped["thinned"] += 1
                return False, stationary
        self._last_kept = fix
        self.stats.accepted += 1
        return True, stationary
