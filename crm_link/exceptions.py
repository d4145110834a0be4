"""Route exceptions the correlator sees at the docks: `misload` and `missing_cargo` (ARCHITECTURE §6).

Each is opened once: the partial unique index on `exceptions` allows one unresolved incident per
(demand, vehicle, type), so seeing the same evidence again (a re-read, a restart) adds nothing.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import psycopg

from crm_link.docks import AtDoor, door_minute, vehicles_at_doors
from crm_link.ledger import Ledger, Row

# A vehicle tag and a cargo tag read at the same dock door this close in time put the cargo on
# that vehicle: about the time a truck stands at a door while it is loaded.
DOCK_WINDOW = timedelta(minutes=30)


def missing_cargo(led: Ledger, demand_id: int, vehicle_id: str, at: datetime) -> bool:
    """The vehicle left the origin: every item never read out there is missing."""
    missing = sorted(i["epc_uri"] for i in led.items.get(demand_id, ()) if i["loaded_at"] is None)
    return bool(missing) and led.open_exception("missing_cargo", demand_id, vehicle_id, at, {"missing": missing})


# The tagged vehicles' reads at the doors of a batch's cargo reads, in its time span widened by the
# window (one index probe by (epc_uri, ts) per tagged vehicle).
_TAG_READS = """
SELECT v.id AS vehicle_id, t.read_point, t.ts FROM vehicles v CROSS JOIN LATERAL (
    SELECT read_point, ts FROM tag_observations
    WHERE epc_uri = v.tag_epc_uri AND read_point = ANY(%(read_points)s::text[])
      AND ts BETWEEN %(first)s::timestamptz - %(window)s::interval AND %(last)s::timestamptz + %(window)s::interval) t
WHERE v.tag_epc_uri IS NOT NULL
ORDER BY t.ts
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


class Misloads:
    """`misload` for cargo put on a vehicle other than its demand's (ARCHITECTURE §6), seen from the
    cargo's or the vehicle's read at a dock door, so whichever of the two commits last finds the other;
    without another vehicle's tag there, by docks.vehicles_at_doors.

    The evidence of a whole batch is read in a few statements: `gather` before its demands are locked
    (it names the demands a vehicle's read concerns), `ask_doors` once they are loaded; `check` then
    opens the batch's misloads read by read, in the batch's order."""

    def __init__(self) -> None:
        self.vehicle_of_tag: dict[str, str] = {}
        self.tag_reads: dict[str, dict[str, list[datetime]]] = defaultdict(lambda: defaultdict(list))
        self.vehicle_side: dict[int, list[Row]] = {}
        self.doors: dict[tuple[str, datetime], AtDoor | None] = {}

    def gather(self, cur: psycopg.Cursor, reads: list[Row]) -> set[int]:
        """Read the evidence around these observations (with an EPC URI); returns the demands that a
        vehicle's read found cargo of."""
        cur.execute("SELECT id, tag_epc_uri FROM vehicles WHERE tag_epc_uri = ANY(%s)",
                    (list({o["epc_uri"] for o in reads}),))
        self.vehicle_of_tag = {r["tag_epc_uri"]: r["id"] for r in cur.fetchall()}
        cargo = [o for o in reads if o["epc_uri"] not in self.vehicle_of_tag and o["direction"] in ("out", None)]
        if cargo:
            cur.execute(_TAG_READS, {"read_points": list({o["read_point"] for o in cargo}), "window": DOCK_WINDOW,
                                     "first": min(o["ts"] for o in cargo), "last": max(o["ts"] for o in cargo)})
            for r in cur.fetchall():
                self.tag_reads[r["read_point"]][r["vehicle_id"]].append(r["ts"])
        for o in reads:
            if (vehicle := self.vehicle_of_tag.get(o["epc_uri"])) is not None:
                cur.execute(_VEHICLE_SIDE, {**_params(o), "vehicle_id": vehicle})
                self.vehicle_side[o["id"]] = cur.fetchall()
        return {r["demand_id"] for rows in self.vehicle_side.values() for r in rows}

    def ask_doors(self, cur: psycopg.Cursor, led: Ledger, reads: list[Row]) -> None:
        """Which vehicle stands at the door of each cargo read that may need it (its cargo has a demand
        from that site), one answer per door and minute."""
        asked: dict[tuple[str, datetime], datetime] = {}
        for o in reads:
            if (o["epc_uri"] not in self.vehicle_of_tag and o["direction"] in ("out", None)
                    and _candidates(led, o, None)):
                asked.setdefault(door_minute(o["read_point"], o["ts"]), o["ts"])
        if asked:
            self.doors = vehicles_at_doors(cur, asked, DOCK_WINDOW)

    def check(self, led: Ledger, o: Row) -> None:
        """Open the misloads this observation shows."""
        vehicle = self.vehicle_of_tag.get(o["epc_uri"])
        if vehicle is None and o["direction"] not in ("out", None):
            return
        rows = self.vehicle_side[o["id"]] if vehicle is not None else (self._cargo_side(led, o)
                                                                        or self._untagged_side(led, o))
        for row in rows:
            evidence = {"epc_uri": row["epc_uri"], "read_point": o["read_point"],
                        "planned_vehicle_id": row["planned_vehicle_id"]}
            if "source" in row:  # not the vehicle's own tag: say how the vehicle at the door was known
                evidence["vehicle_source"] = row["source"]
            led.open_exception("misload", row["demand_id"], row["vehicle_id"], row["at"], evidence)

    def _cargo_side(self, led: Ledger, o: Row) -> list[Row]:
        """A cargo read out at a door, paired with other vehicles' tag reads at that door within the window."""
        rows = []
        for demand in _candidates(led, o, None):
            for vehicle, times in self.tag_reads[o["read_point"]].items():
                first = bisect.bisect_left(times, o["ts"] - DOCK_WINDOW)
                if vehicle != demand["vehicle_id"] and first < len(times) and times[first] <= o["ts"] + DOCK_WINDOW:
                    rows.append({"demand_id": demand["id"], "vehicle_id": vehicle, "epc_uri": o["epc_uri"],
                                 "planned_vehicle_id": demand["vehicle_id"], "at": max(o["ts"], times[first])})
        return rows

    def _untagged_side(self, led: Ledger, o: Row) -> list[Row]:
        """No other vehicle's tag at the door: the vehicle there by a dock assignment or its fixes, when
        no tag says otherwise, against the demands of the cargo read out."""
        at_door = self.doors.get(door_minute(o["read_point"], o["ts"]))
        if at_door is None or at_door.source == "tag":
            return []
        return [{"demand_id": d["id"], "vehicle_id": at_door.vehicle_id, "planned_vehicle_id": d["vehicle_id"],
                 "epc_uri": o["epc_uri"], "at": o["ts"], "source": at_door.source}
                for d in _candidates(led, o, at_door.vehicle_id)]


def _candidates(led: Ledger, o: Row, not_on: str | None) -> list[Row]:
    """The open demands from this read's site that plan this cargo on a vehicle (other than `not_on`)."""
    site = o["read_point"].split("/", 1)[0]
    return [d for d, _ in led.by_epc.get(o["epc_uri"], ())
            if d["status"] != "delivered" and d["origin_site_id"] == site and d["vehicle_id"] is not None
            and d["vehicle_id"] != not_on]


def _params(o: Row) -> dict[str, Any]:
    return {"epc": o["epc_uri"], "read_point": o["read_point"], "ts": o["ts"],
            "site": o["read_point"].split("/", 1)[0], "window": DOCK_WINDOW}
