"""Thresholds of the route exceptions and the ETA.

Tenant defaults (settings) overridden per customer (`customers.exception_thresholds`); the defaults
follow fleet practice: a corridor of a few hundred metres held for a while (Samsara's
maxOffRouteMeters + minDurationMilliseconds), a stop after five minutes stationary (Traccar's
minimalParkingDuration 300 s), GPS loss after ten minutes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Thresholds:
    corridor_m: float = 300.0
    off_route_min_s: float = 120.0
    stop_speed_kmh: float = 5.0
    stop_min_s: float = 300.0
    gps_silence_s: float = 600.0
    late_grace_s: float = 900.0
    eta_min_speed_kmh: float = 15.0  # floor of the speed the ETA assumes (a parked truck is not "never")
    eta_max_speed_kmh: float = 90.0  # ceiling: a truck's legal speed, not a burst on the motorway

    def overridden(self, overrides: dict[str, Any] | None) -> Thresholds:
        known = {f.name for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{k: float(v) for k, v in (overrides or {}).items() if k in known})
