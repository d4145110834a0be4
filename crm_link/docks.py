"""Which vehicle is at a dock door at a given time, from the most trusted evidence there is: the
vehicle's own tag read at that door, else a dispatcher's dock assignment, else the one vehicle whose
fixes put it inside the site's geofence (two vehicles there and nothing tells them apart: no answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from crm_link.geo import Geofence

_TAGGED = """
SELECT v.id FROM vehicles v CROSS JOIN LATERAL (
    SELECT t.ts FROM tag_observations t
    WHERE t.epc_uri = v.tag_epc_uri AND t.read_point = %(read_point)s
      AND t.ts BETWEEN %(ts)s::timestamptz - %(window)s::interval AND %(ts)s::timestamptz + %(window)s::interval
    ORDER BY abs(extract(epoch FROM t.ts - %(ts)s::timestamptz)) LIMIT 1) seen
WHERE v.tag_epc_uri IS NOT NULL
ORDER BY abs(extract(epoch FROM seen.ts - %(ts)s::timestamptz)) LIMIT 1
"""

_ASSIGNED = """
SELECT vehicle_id FROM dock_assignments
WHERE site_id = %(site)s AND door_id = %(door)s AND valid_from <= %(ts)s AND (valid_to IS NULL OR valid_to > %(ts)s)
ORDER BY valid_from DESC, created_at DESC LIMIT 1
"""

# Each vehicle's fix nearest the time within the window (one index probe per vehicle).
_FIXES = """
SELECT v.id, p.lat, p.lon, s.lat AS site_lat, s.lon AS site_lon, s.radius_m
FROM sites s CROSS JOIN vehicles v CROSS JOIN LATERAL (
    SELECT lat, lon FROM positions
    WHERE vehicle_id = v.id
      AND ts BETWEEN %(ts)s::timestamptz - %(window)s::interval AND %(ts)s::timestamptz + %(window)s::interval
    ORDER BY abs(extract(epoch FROM ts - %(ts)s::timestamptz)) LIMIT 1) p
WHERE s.id = %(site)s AND s.lat IS NOT NULL
"""


@dataclass(frozen=True, slots=True)
class AtDoor:
    vehicle_id: str
    source: str  # "tag", "dock_assignment" or "geofence"


def vehicle_at_door(cur: psycopg.Cursor, read_point: str, ts: datetime, window: timedelta) -> AtDoor | None:
    """`cur` returns dict rows; `window` bounds how far from `ts` a tag read or a fix may be."""
    site, _, door = read_point.partition("/")
    params = {"read_point": read_point, "site": site, "door": door, "ts": ts, "window": window}
    cur.execute(_TAGGED, params)
    if row := cur.fetchone():
        return AtDoor(row["id"], "tag")
    cur.execute(_ASSIGNED, params)
    if row := cur.fetchone():
        return AtDoor(row["vehicle_id"], "dock_assignment")
    cur.execute(_FIXES, params)
    inside = [r["id"] for r in cur.fetchall()
              if Geofence(r["site_lat"], r["site_lon"], r["radius_m"]).contains(r["lat"], r["lon"])]
    return AtDoor(inside[0], "geofence") if len(inside) == 1 else None
