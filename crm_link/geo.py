"""Geofences, planned routes and distances in metres: shapely geometry in a local metric projection.

Around a reference point, an equirectangular projection is accurate to well under a metre over the
few kilometres of a geofence or corridor, which is all it is used for.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class LocalProjection:
    lat0: float
    lon0: float

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        k = math.radians(1) * EARTH_RADIUS_M
        return (lon - self.lon0) * k * math.cos(math.radians(self.lat0)), (lat - self.lat0) * k

    def latlon(self, x: Any, y: Any) -> tuple[Any, Any]:
        """The inverse of xy (on numbers or arrays)."""
        k = math.radians(1) * EARTH_RADIUS_M
        return self.lat0 + y / k, self.lon0 + x / (k * math.cos(math.radians(self.lat0)))


@dataclass(frozen=True, slots=True)
class Geofence:
    """A site's or a delivery point's area: a circle, or a GeoJSON Polygon (a yard's real outline, which
    may be concave; its site keeps the circle around it as well)."""

    lat: float
    lon: float
    radius_m: float
    polygon: dict[str, Any] | None = None

    def contains(self, lat: float, lon: float) -> bool:
        if self.polygon is not None:
            projection, outline = _outline(json.dumps(self.polygon, sort_keys=True))
            return bool(outline.covers(Point(projection.xy(lat, lon))))
        x, y = LocalProjection(self.lat, self.lon).xy(lat, lon)
        return x * x + y * y < self.radius_m * self.radius_m


@lru_cache(maxsize=1024)
def _outline(geojson: str) -> tuple[LocalProjection, Polygon]:
    """A GeoJSON Polygon (outer ring, then holes; lon, lat) in metres around its first corner, parsed once."""
    rings = json.loads(geojson)["coordinates"]
    projection = LocalProjection(rings[0][0][1], rings[0][0][0])
    metres = [[projection.xy(lat, lon) for lon, lat, *_ in ring] for ring in rings]
    return projection, Polygon(metres[0], metres[1:])


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@lru_cache(maxsize=4096)
def _route(geojson: str) -> tuple[LocalProjection, LineString]:
    """The planned route in metres, around its first point (cached: one parse per route, not per fix)."""
    coordinates = json.loads(geojson)["coordinates"]
    projection = LocalProjection(coordinates[0][1], coordinates[0][0])
    return projection, LineString([projection.xy(lat, lon) for lon, lat in coordinates])


def off_route_m(planned_route: dict[str, Any], lat: float, lon: float) -> float:
    return float(off_route_many(planned_route, np.array([lat]), np.array([lon]))[0])


def off_route_many(planned_route: dict[str, Any], lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """The distances of many fixes from the planned route, in one call (a batch's fixes of a vehicle)."""
    projection, line = _route(json.dumps(planned_route, sort_keys=True))
    return shapely.distance(line, shapely.points(*projection.xy(lats, lons)))


def remaining_m(planned_route: dict[str, Any] | None, lat: float, lon: float, to_lat: float, to_lon: float) -> float:
    """Distance left along the planned route from the fix's nearest point on it, else great-circle."""
    if planned_route:
        projection, line = _route(json.dumps(planned_route, sort_keys=True))
        here = Point(projection.xy(lat, lon))
        return float(line.length - line.project(here) + line.distance(here))
    return great_circle_m(lat, lon, to_lat, to_lon)


def pieces_ahead(planned_route: dict[str, Any], lat: float, lon: float,
                 step_m: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The planned route still ahead of the fix: the fix's distance to its nearest point on the route,
    and from there to the end, pieces of `step_m` (the last one shorter) as their middles' latitudes,
    longitudes and their lengths."""
    projection, line = _route(json.dumps(planned_route, sort_keys=True))
    here = Point(projection.xy(lat, lon))
    starts = np.arange(line.project(here), line.length, step_m)
    lengths = np.minimum(step_m, line.length - starts)
    middles = shapely.line_interpolate_point(line, starts + lengths / 2)
    lats, lons = projection.latlon(shapely.get_x(middles), shapely.get_y(middles))
    return float(line.distance(here)), lats, lons, lengths
