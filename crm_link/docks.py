"""Which vehicle is at a dock door at a given time, from the most trusted evidence there is: the
vehicle's own tag read at that door, else a dispatcher's dock assignment, else the one vehicle whose
last fix put it inside the site's geofence (two vehicles there and nothing tells them apart: no answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from crm_link.geo import Geofence

# All three kinds of evidence for each asked (read point, time), in one round trip for the whole
# batch, ranked: 1 a vehicle tag read at the door in the window (one index probe by (epc_uri, ts) per
# tagged vehicle, as in the misload probe), 2 the latest valid dock assignment, 3 each vehicle's last
# fix at the time, not older than the window (one index probe per vehicle), with the site's geofence.
_EVIDENCE = """
SELECT k.n, e.* FROM unnest(%(read_points)s::text[], %(times)s::timestamptz[]) WITH ORDINALITY AS k (read_point, ts, n)
CROSS JOIN LATERAL (
(SELECT 1 AS rank, v.id, NULL::float8 AS lat, NULL::float8 AS lon, NULL::float8 AS site_lat,
        NULL::float8 AS site_lon, NULL::float8 AS radius_m, NULL::jsonb AS polygon
 FROM vehicles v CROSS JOIN LATERAL (
     SELECT t.ts FROM tag_observations t
     WHERE t.epc_uri = v.tag_epc_uri AND t.read_point = k.read_point
       AND t.ts BETWEEN k.ts - %(window)s::interval AND k.ts + %(window)s::interval
     ORDER BY t.ts LIMIT 1) seen
 WHERE v.tag_epc_uri IS NOT NULL
 ORDER BY abs(extract(epoch FROM seen.ts - k.ts)) LIMIT 1)
UNION ALL
(SELECT 2, vehicle_id, NULL, NULL, NULL, NULL, NULL, NULL FROM dock_assignments
 WHERE site_id = split_part(k.read_point, '/', 1) AND door_id = substr(k.read_point, strpos(k.read_point, '/') + 1)
   AND valid_from <= k.ts AND (valid_to IS NULL OR valid_to > k.ts)
 ORDER BY valid_from DESC, created_at DESC LIMIT 1)
UNION ALL
SELECT 3, v.id, p.lat, p.lon, s.lat, s.lon, s.radius_m, s.geofence_polygon
FROM sites s CROSS JOIN vehicles v CROSS JOIN LATERAL (
    SELECT lat, lon FROM positions
    WHERE vehicle_id = v.id AND ts BETWEEN k.ts - %(window)s::interval AND k.ts
    ORDER BY ts DESC LIMIT 1) p
WHERE s.id = split_part(k.read_point, '/', 1) AND s.lat IS NOT NULL) e
ORDER BY k.n, e.rank
"""


@dataclass(frozen=True, slots=True)
class AtDoor:
    vehicle_id: str
    source: str  # "tag", "dock_assignment" or "geofence"


def door_minute(read_point: str, ts: datetime) -> tuple[str, datetime]:
    """Whom a read asks about: a pallet passage is a burst of reads at one door, and a minute is
    nothing against the window, so the reads of one door and minute share one answer."""
    return read_point, ts.replace(second=0, microsecond=0)


def vehicles_at_doors(cur: psycopg.Cursor, asked: dict[tuple[str, datetime], datetime],
                      window: timedelta) -> dict[tuple[str, datetime], AtDoor | None]:
    """For each (read point, minute) of `asked`, at the time given for it: the vehicle at that door, or
    None. `cur` returns dict rows; `window` bounds how far from the time a tag read or a fix may be."""
    keys = list(asked)
    cur.execute(_EVIDENCE, {"read_points": [k[0] for k in keys], "times": list(asked.values()), "window": window})
    found: dict[int, list[dict[str, Any]]] = {}
    for row in cur.fetchall():
        found.setdefault(row["n"], []).append(row)
    return {key: _decide(found.get(n, [])) for n, key in enumerate(keys, 1)}


def _decide(rows: list[dict[str, Any]]) -> AtDoor | None:
    if not rows:
        return None
    if rows[0]["rank"] < 3:
        return AtDoor(rows[0]["id"], "tag" if rows[0]["rank"] == 1 else "dock_assignment")
    site = rows[0]  # the vehicles' last fixes, all against the door's site
    fence = Geofence(site["site_lat"], site["site_lon"], site["radius_m"], site["polygon"])
    inside = [r["id"] for r in rows if fence.contains(r["lat"], r["lon"])]
    return AtDoor(inside[0], "geofence") if len(inside) == 1 else None
