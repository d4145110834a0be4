"""Which vehicle is at a dock door at a given time, from the most trusted evidence there is: the
vehicle's own tag read at that door, else a dispatcher's dock assignment, else the one vehicle whose
last fix put it inside the site's geofence (two vehicles there and nothing tells them apart: no answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from crm_link.geo import Geofence

# All three kinds of evidence in one round trip (the correlator asks this for every cargo read out at
# a door without another vehicle's tag), ranked: 1 a vehicle tag read at the door in the window (one
# index probe by (epc_uri, ts) per tagged vehicle, as in the misload probe), 2 the latest valid dock
# assignment, 3 each vehicle's last fix at the time, not older than the window (one index probe per
# vehicle), with the site's geofence.
_EVIDENCE = """
(SELECT 1 AS rank, v.id, NULL::float8 AS lat, NULL::float8 AS lon, NULL::float8 AS site_lat,
        NULL::float8 AS site_lon, NULL::float8 AS radius_m, NULL::jsonb AS polygon
 FROM vehicles v CROSS JOIN LATERAL (
     SELECT t.ts FROM tag_observations t
     WHERE t.epc_uri = v.tag_epc_uri AND t.read_point = %(read_point)s
       AND t.ts BETWEEN %(ts)s::timestamptz - %(window)s::interval AND %(ts)s::timestamptz + %(window)s::interval
     ORDER BY t.ts LIMIT 1) seen
 WHERE v.tag_epc_uri IS NOT NULL
 ORDER BY abs(extract(epoch FROM seen.ts - %(ts)s::timestamptz)) LIMIT 1)
UNION ALL
(SELECT 2, vehicle_id, NULL, NULL, NULL, NULL, NULL, NULL FROM dock_assignments
 WHERE site_id = %(site)s AND door_id = %(door)s AND valid_from <= %(ts)s AND (valid_to IS NULL OR valid_to > %(ts)s)
 ORDER BY valid_from DESC, created_at DESC LIMIT 1)
UNION ALL
SELECT 3, v.id, p.lat, p.lon, s.lat, s.lon, s.radius_m, s.geofence_polygon
FROM sites s CROSS JOIN vehicles v CROSS JOIN LATERAL (
    SELECT lat, lon FROM positions
    WHERE vehicle_id = v.id AND ts BETWEEN %(ts)s::timestamptz - %(window)s::interval AND %(ts)s::timestamptz
    ORDER BY ts DESC LIMIT 1) p
WHERE s.id = %(site)s AND s.lat IS NOT NULL
ORDER BY rank
"""


@dataclass(frozen=True, slots=True)
class AtDoor:
    vehicle_id: str
    source: str  # "tag", "dock_assignment" or "geofence"


# Answers already found in this batch, by door and minute: a pallet passage is a burst of reads at
# one door, and a minute is nothing against the window.
DoorMemo = dict[tuple[str, datetime], "AtDoor | None"]


def vehicle_at_door(cur: psycopg.Cursor, read_point: str, ts: datetime, window: timedelta,
                    memo: DoorMemo | None = None) -> AtDoor | None:
    """`cur` returns dict rows; `window` bounds how far from `ts` a tag read or a fix may be."""
    if memo is None:
        return _vehicle_at_door(cur, read_point, ts, window)
    key = (read_point, ts.replace(second=0, microsecond=0))
    if key not in memo:
        memo[key] = _vehicle_at_door(cur, read_point, ts, window)
    return memo[key]


def _vehicle_at_door(cur: psycopg.Cursor, read_point: str, ts: datetime, window: timedelta) -> AtDoor | None:
    site, _, door = read_point.partition("/")
    params = {"read_point": read_point, "site": site, "door": door, "ts": ts, "window": window}
    cur.execute(_EVIDENCE, params)
    rows = cur.fetchall()
    if rows and rows[0]["rank"] < 3:
        return AtDoor(rows[0]["id"], "tag" if rows[0]["rank"] == 1 else "dock_assignment")
    inside = [r["id"] for r in rows
              if Geofence(r["site_lat"], r["site_lon"], r["radius_m"], r["polygon"]).contains(r["lat"], r["lon"])]
    return AtDoor(inside[0], "geofence") if len(inside) == 1 else None
