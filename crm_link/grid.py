"""The fixed grid the speed history is kept on: cells, the UTC hour of the week, speed buckets.

Rows are CELL_DEG of latitude (about 500 m); each row's columns are CELL_DEG of longitude scaled by the
cosine of the row's middle latitude, so a cell is about 500 m square anywhere a fleet drives. A cell id
is the row in the high 32 bits and the column in the low 32 (two's complement), one bigint.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from crm_link.geo import EARTH_RADIUS_M

CELL_DEG = 0.0045
HOURS_OF_WEEK = 168
ANY_HOUR = HOURS_OF_WEEK  # the row of a cell over every hour of the week
BUCKET_KMH = 5.0  # speed_counts[i] counts pairs of fixes driven at i*5 to (i+1)*5 km/h
BUCKETS = 31  # the last one open: 150 km/h and more
_MONDAY_OFFSET_H = 72  # 1970-01-01 (epoch 0) was a Thursday: 72 hours after the Monday before

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def cells(lat: Floats | float, lon: Floats | float) -> Ints:
    row = np.floor(np.asarray(lat, dtype=np.float64) / CELL_DEG)
    col = np.floor(np.asarray(lon, dtype=np.float64) * np.cos(np.radians((row + 0.5) * CELL_DEG)) / CELL_DEG)
    return (row.astype(np.int64) << 32) + (col.astype(np.int64) & 0xFFFFFFFF)


def cell_of(lat: float, lon: float) -> int:
    return int(cells(lat, lon))


def neighbourhood(cell: int) -> list[int]:
    """The cell and the eight around it (a place near a cell's edge is also near the next cell's)."""
    row, col = cell >> 32, cell & 0xFFFFFFFF
    col = col - (1 << 32) if col >= 1 << 31 else col
    return [((row + dr) << 32) + ((col + dc) & 0xFFFFFFFF) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]


def hours_of_week(epoch_s: Floats | float) -> Ints:
    """0 = Monday 00:00-01:00 UTC … 167 = Sunday 23:00-24:00 UTC."""
    hours = np.floor(np.asarray(epoch_s, dtype=np.float64) / 3600).astype(np.int64)
    return (hours + _MONDAY_OFFSET_H) % HOURS_OF_WEEK


def hour_of_week(epoch_s: float) -> int:
    """hours_of_week of one instant, without numpy's cost per call (asked for every piece of a route)."""
    return int((epoch_s // 3600 + _MONDAY_OFFSET_H) % HOURS_OF_WEEK)


def metres(lat1: Floats, lon1: Floats, lat2: Floats, lon2: Floats) -> Floats:
    """Great-circle distance, element by element (the haversine of crm_link.geo, on arrays)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.subtract(lon2, lon1)) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))


def metres_from(lat: Floats, lon: Floats, lat0: float, lon0: float) -> Floats:
    """Distances of points from one place, on the plane tangent there: within 0.1 % of metres() up to
    tens of kilometres, and a fraction of its cost (matching past trips' paths point by point)."""
    k = np.radians(1) * EARTH_RADIUS_M
    return np.hypot((np.asarray(lon) - lon0) * (k * np.cos(np.radians(lat0))), (np.asarray(lat) - lat0) * k)
