"""Route exceptions the correlator sees at the docks: `misload` and `missing_cargo` (ARCHITECTURE §6).

Each is opened once: the partial unique index on `exceptions` allows one unresolved incident per
(demand, vehicle, type), so seeing the same evidence again (a re-read, a restart) adds nothing.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import psycopg

from crm_link.docks import DoorMemo, vehicle_at_door

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


# A cargo read out at a door, paired with other vehicles' tag reads at that door within the window
# (one index probe by (epc_uri, ts) per tagged vehicle).
_CARGO_SIDE = """
SELECT d.id AS demand_id, v.id AS vehicle_id, d.vehicle_id AS planned_vehicle_id,
       %(epc)s::text AS epc_uri, greatest(%(ts)s::timestamptz, min(seen.ts)) AS at
FROM demand_items i
JOIN demands d ON d.id = i.demand_id AND d.status <> 'delivered' AND d.origin_site_id = %(site)s::text
JOIN vehicles v ON v.tag_epc_uri IS NOT NULL AND v.id <> d.vehicle_id
CROSS JOIN LATERAL (
    SELECT t.ts FROM tag_observations t
    WHERE t.epc_uri = v.tag_epc_uri AND t.read_point = %(read_point)s::text
      AND t.ts BETWEEN %(ts)s::timestamptz - %(window)s::interval AND %(ts)s::timestamptz + %(window)s::interval
    ORDER BY t.ts LIMIT 1) seen
WHERE i.epc_uri = %(epc)s::text
GROUP BY d.id, v.id
"""

# A vehicle's tag read at a door, paired with the cargo read out at that door within the window.
_VEHICLE_SIDE = """
SELECT d.id AS demand_id, %(vehicle_id)s::text AS vehicle_id, d.vehicle_id AS planned_vehicle_id,
       min(c.epc_uri) AS epc_uri, greatest(%(ts)s::timestamptz, min(c.ts)) AS at
FROM tag_observations c
JOIN demand_items i ON i.epc_uri = c.epc_uri
JOIN demands d ON d.id = i.demand_id AND d.status <> 'delivered' AND d.origin_site_id = %(site)s::text
     AND d.vehicle_id <> %(vehicle_id)s::text
WHERE c.read_point = %(read_point)s::text AND coalesce(c.direction, 'out') = 'out'
  AND c.ts BETWEEN %(ts)s::timestamptz - %(window)s::interval AND %(ts)s::timestamptz + %(window)s::interval
GROUP BY d.id, d.vehicle_id
"""


def _untagged_side(cur: psycopg.Cursor, params: dict[str, Any], doors: DoorMemo | None) -> list[dict[str, Any]]:
    """No other vehicle's tag at the door: the vehicle there by a dock assignment or its fixes, when
    no tag says otherwise, against the demands of the cargo read out."""
    at_door = vehicle_at_door(cur, params["read_point"], params["ts"], params["window"], doors)
    if at_door is None or at_door.source == "tag":
        return []
    cur.execute("SELECT d.id AS demand_id, %(at_door)s::text AS vehicle_id, d.vehicle_id AS planned_vehicle_id, "
                "%(epc)s::text AS epc_uri, %(ts)s::timestamptz AS at, %(source)s::text AS source "
                "FROM demand_items i JOIN demands d ON d.id = i.demand_id AND d.status <> 'delivered' "
                "AND d.origin_site_id = %(site)s::text AND d.vehicle_id <> %(at_door)s::text "
                "WHERE i.epc_uri = %(epc)s::text",
                {**params, "at_door": at_door.vehicle_id, "source": at_door.source})
    return cur.fetchall()


def misloads(cur: psycopg.Cursor, observation: dict[str, Any], doors: DoorMemo | None = None) -> set[int]:
    """Open `misload` for cargo put on a vehicle other than its demand's (ARCHITECTURE §6), seen
    from the cargo's or the vehicle's read at a dock door, so whichever of the two commits last
    finds the other; without another vehicle's tag there, by docks.vehicle_at_door (`doors`: its
    answers in this batch). `observation` is a tag_observations row; returns the demands that got a new
    exception."""
    cur.execute("SELECT id FROM vehicles WHERE tag_epc_uri = %s", (observation["epc_uri"],))
    vehicle = cur.fetchone()
    if vehicle is None and observation["direction"] not in ("out", None):
        return set()
    params = {"epc": observation["epc_uri"], "read_point": observation["read_point"], "ts": observation["ts"],
              "site": observation["read_point"].split("/", 1)[0], "window": DOCK_WINDOW,
              "vehicle_id": vehicle and vehicle["id"]}
    cur.execute(_CARGO_SIDE if vehicle is None else _VEHICLE_SIDE, params)
    rows = cur.fetchall()
    if vehicle is None and not rows:
        rows = _untagged_side(cur, params, doors)
    opened = set()
    for row in rows:
        evidence = {"epc_uri": row["epc_uri"], "read_point": observation["read_point"],
                    "planned_vehicle_id": row["planned_vehicle_id"]}
        if "source" in row:  # not the vehicle's own tag: say how the vehicle at the door was known
            evidence["vehicle_source"] = row["source"]
        if open_exception(cur, "misload", row["demand_id"], row["vehicle_id"], row["at"], evidence):
            opened.add(row["demand_id"])
    return opened
