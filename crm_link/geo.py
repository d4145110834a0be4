"""Geofences and distances in metres: shapely geometry in a local metric projection.

Around a reference point, an equirectangular projection is accurate to well under a metre over the
few kilometres of a geofence or corridor, which is all it is used for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from shapely.geometry import Point, Polygon

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class LocalProjection:
    lat0: float
    lon0: float

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        k = math.radians(1) * EARTH_RADIUS_M
        return (lon - self.lon0) * k * math.cos(math.radians(self.lat0)), (lat - self.lat0) * k


@dataclass(frozen=True, slots=True)
class Geofence:
    """A circle around a site or a delivery point."""

    lat: float
    lon: float
    radius_m: float

    def contains(self, lat: float, lon: float) -> bool:
        projection = LocalProjection(self.lat, self.lon)
        return _disc(self.radius_m).contains(Point(projection.xy(lat, lon)))


@lru_cache(maxsize=256)
def _disc(radius_m: float) -> Polygon:
    """A geofence's circle around the origin, built once per radius (it is asked on every fix)."""
    return Point(0, 0).buffer(radius_m)
