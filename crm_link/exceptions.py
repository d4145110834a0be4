"""Route exceptions the correlator can see: `misload` and `missing_cargo` (ARCHITECTURE §6).

Each is opened once: the partial unique index on `exceptions` allows one unresolved incident per
(demand, vehicle, type), so seeing the same evidence again (a re-read, a restart) adds nothing.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import psycopg

# A vehicle tag and a cargo tag read at the same dock door this close in time put the cargo on
# that vehicle: about the time a truck stands at a door while it is loaded.
DOCK_WINDOW = timedelta(minutes=30)


def open_exception(cur: psycopg.Cursor, kind: str, demand_id: int, vehicle_id: str | None, at: datetime,
                   evidence: dict[str, Any]) -> bool:
    """Open an exception unless one of this kind is already unresolved; True when it was opened."""
    cur.execute("INSERT INTO exceptions (demand_id, vehicle_id, type, opened_at, evidence) "
                "VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (coalesce(demand_id, 0), coalesce(vehicle_id, ''), type) WHERE state <> 'resolved' "
                "DO NOTHING RETURNING id", (demand_id, vehicle_id, kind, at, json.dumps(evidence, default=str)))
    return cur.fetchone() is not None


def missing_cargo(cur: psycopg.Cursor, demand_id: int, vehicle_id: str, at: datetime) -> bool:
    """The vehicle left the origin: every item never read out there is missing."""
    cur.execute("SELECT array_agg(epc_uri ORDER BY epc_uri) AS missing FROM demand_items "
                "WHERE demand_id = %s AND loaded_at IS NULL", (demand_id,))
    missing = cur.fetchone()["missing"]
    return bool(missing) and open_exception(cur, "missing_cargo", demand_id, vehicle_id, at, {"missing": missing})


# (cargo read, vehicle tag read) pairs at the same dock door within the window, where the
# vehicle is not the one the cargo's demand assigns. The given observation is either side of the
# pair, so whichever of the two reads commits last finds the other.
_MISLOADS = """
WITH me AS (
    SELECT %(epc)s::text AS epc, %(read_point)s::text AS read_point, %(ts)s::timestamptz AS ts,
           coalesce(%(direction)s::text, 'out') = 'out' AS outbound, %(window)s::interval AS window,
           EXISTS (SELECT 1 FROM vehicles WHERE tag_epc_uri = %(epc)s::text) AS is_vehicle
), pairs AS (
    SELECT me.epc AS cargo_epc, me.ts AS cargo_ts, t.epc_uri AS vehicle_epc, t.ts AS vehicle_ts
    FROM me JOIN tag_observations t ON t.read_point = me.read_point
         AND t.ts BETWEEN me.ts - me.window AND me.ts + me.window
    WHERE NOT me.is_vehicle AND me.outbound
    UNION ALL
    SELECT c.epc_uri, c.ts, me.epc, me.ts
    FROM me JOIN tag_observations c ON c.read_point = me.read_point
         AND c.ts BETWEEN me.ts - me.window AND me.ts + me.window
    WHERE me.is_vehicle AND coalesce(c.direction, 'out') = 'out' AND c.epc_uri IS NOT NULL
)
SELECT DISTINCT ON (d.id, v.id) d.id AS demand_id, v.id AS vehicle_id, d.vehicle_id AS planned_vehicle_id,
       p.cargo_epc AS epc_uri, greatest(p.cargo_ts, p.vehicle_ts) AS at
FROM pairs p
JOIN vehicles v ON v.tag_epc_uri = p.vehicle_epc
JOIN demand_items i ON i.epc_uri = p.cargo_epc
JOIN demands d ON d.id = i.demand_id AND d.status <> 'delivered' AND d.vehicle_id <> v.id
     AND d.origin_site_id = split_part(%(read_point)s::text, '/', 1)
ORDER BY d.id, v.id, at
"""


def misloads(cur: psycopg.Cursor, observation: dict[str, Any]) -> set[int]:
    """Open `misload` for cargo put on a vehicle other than its demand's, seen from the cargo's or
    the vehicle's read (an observation row: epc_uri, read_point, ts, direction); returns the
    demands that got a new exception."""
    cur.execute(_MISLOADS, {"epc": observation["epc_uri"], "read_point": observation["read_point"],
                            "ts": observation["ts"], "direction": observation["direction"], "window": DOCK_WINDOW})
    opened = set()
    for row in cur.fetchall():
        evidence = {"epc_uri": row["epc_uri"], "read_point": observation["read_point"],
                    "planned_vehicle_id": row["planned_vehicle_id"]}
        if open_exception(cur, "misload", row["demand_id"], row["vehicle_id"], row["at"], evidence):
            opened.add(row["demand_id"])
    return opened
