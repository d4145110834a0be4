"""The route exceptions one fix of a shipment in transit can open or clear: one detector per kind.

A detector reads the situation after the fix (the watch's state, moved on by the fix, and the new
ETA) and answers `Open(evidence)`, `Clear(note)` or None. The route watch runs them in the order of
`DETECTORS`, the way Traccar runs its event handlers. A new kind of exception is one detector here,
one line in DETECTORS and its word in storage/vocabulary.py (with the migration of its CHECK).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import psycopg

from crm_link.geo import Geofence, great_circle_m
from crm_link.thresholds import Thresholds

EWMA_WEIGHT = 0.2  # of the newest fix in the average speed: about the last five fixes count
MOVED_M = 50.0  # a stop ends when the vehicle is moving and this far from where it stopped


@dataclass
class Watch:
    """What the route watch keeps of an in-transit demand between its fixes (table route_watch)."""

    off_route_since: datetime | None = None
    stopped_since: datetime | None = None
    stop_lat: float | None = None
    stop_lon: float | None = None
    last_fix_at: datetime | None = None
    speed_kmh_avg: float | None = None

    def advance(self, at: datetime, lat: float, lon: float, speed_kmh: float, off_route_m: float | None,
                t: Thresholds) -> None:
        """Move the state on by one fix: average speed, where and since when stopped, since when off route."""
        self.speed_kmh_avg = speed_kmh if self.speed_kmh_avg is None else (
            EWMA_WEIGHT * speed_kmh + (1 - EWMA_WEIGHT) * self.speed_kmh_avg)
        if off_route_m is not None:
            self.off_route_since = None if off_route_m <= t.corridor_m else (self.off_route_since or at)
        if speed_kmh < t.stop_speed_kmh:
            if self.stopped_since is None:
                self.stopped_since, self.stop_lat, self.stop_lon = at, lat, lon
        elif self.stopped_since is None or great_circle_m(self.stop_lat, self.stop_lon, lat, lon) > MOVED_M:
            self.stopped_since = self.stop_lat = self.stop_lon = None
        self.last_fix_at = at


@dataclass
class Situation:
    """What every detector sees: the demand (with its origin and destination geofences, o_* and d_*),
    the fix, the thresholds that apply to it, the watch after the fix and the new ETA."""

    cur: psycopg.Cursor
    demand: dict[str, Any]
    fix: dict[str, Any]
    t: Thresholds
    watch: Watch
    speed_kmh: float  # the fix's, 0 when it has none
    off_route_m: float | None  # None without a planned route
    eta: datetime | None

    @property
    def stationary(self) -> bool:
        return self.speed_kmh < self.t.stop_speed_kmh

    @property
    def long_unplanned_stop(self) -> bool:
        """Stopped for too long, and not at the origin or the destination (stops there are the plan)."""
        w = self.watch
        return (self.stationary and w.stopped_since is not None
                and (self.fix["ts"] - w.stopped_since).total_seconds() >= self.t.stop_min_s
                and not any(self.demand[f"{p}_lat"] is not None
                            and Geofence(self.demand[f"{p}_lat"], self.demand[f"{p}_lon"], self.demand[f"{p}_radius"],
                                         self.demand.get(f"{p}_polygon")).contains(w.stop_lat, w.stop_lon)
                            for p in ("o", "d")))

    @cached_property
    def stop_site(self) -> str | None:
        """A known site, not the demand's destination, whose geofence holds the stop (asked only while
        a stop lasts beyond the threshold, when the track filter sends a fix a minute)."""
        w = self.watch
        self.cur.execute("SELECT id, lat, lon, radius_m, geofence_polygon FROM sites "
                         "WHERE lat BETWEEN %s - 0.1 AND %s + 0.1 "
                         "AND lon BETWEEN %s - 0.1 AND %s + 0.1 AND id IS DISTINCT FROM %s",
                         (w.stop_lat, w.stop_lat, w.stop_lon, w.stop_lon, self.demand["destination_site_id"]))
        return next((s["id"] for s in self.cur.fetchall()
                     if Geofence(s["lat"], s["lon"], s["radius_m"], s["geofence_polygon"]).contains(w.stop_lat,
                                                                                                   w.stop_lon)), None)

    def stop_evidence(self) -> dict[str, Any]:
        w = self.watch
        return {"since": w.stopped_since, "lat": w.stop_lat, "lon": w.stop_lon, "position_id": self.fix["id"]}


@dataclass(frozen=True, slots=True)
class Open:
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Clear:
    note: str


Finding = Open | Clear | None


def off_route(s: Situation) -> Finding:
    """Outside the planned route's corridor for long enough."""
    if s.off_route_m is None:
        return None
    if s.watch.off_route_since is None:
        return Clear("back on route")
    if (s.fix["ts"] - s.watch.off_route_since).total_seconds() < s.t.off_route_min_s:
        return None
    return Open({"distance_m": round(s.off_route_m), "since": s.watch.off_route_since, "lat": s.fix["lat"],
                 "lon": s.fix["lon"], "position_id": s.fix["id"], "corridor_m": s.t.corridor_m})


def unplanned_stop(s: Situation) -> Finding:
    """Stationary too long away from the origin, the destination and any other known site."""
    if s.watch.stopped_since is None:
        return Clear("moving again")
    return Open(s.stop_evidence()) if s.long_unplanned_stop and s.stop_site is None else None


def wrong_destination(s: Situation) -> Finding:
    """Stopped too long inside another known site's geofence (items read in there: correlate.py)."""
    if s.long_unplanned_stop and s.stop_site is not None:
        return Open({**s.stop_evidence(), "site": s.stop_site})
    return None


def late(s: Situation) -> Finding:
    """The ETA past the end of the delivery window, with grace."""
    if s.eta is None or s.demand["delivery_to"] is None:
        return None
    if s.eta <= s.demand["delivery_to"] + timedelta(seconds=s.t.late_grace_s):
        return Clear("ETA back inside the window")
    return Open({"eta": s.eta, "delivery_to": s.demand["delivery_to"], "grace_s": s.t.late_grace_s,
                 "position_id": s.fix["id"]})


def emergency(s: Situation) -> Finding:
    """The vehicle's terminal raised its emergency (SOS) alarm; a dispatcher resolves it."""
    if "emergency" not in (s.fix.get("alarms") or ()):
        return None
    return Open({"alarms": s.fix["alarms"], "lat": s.fix["lat"], "lon": s.fix["lon"], "position_id": s.fix["id"]})


def gps_silence(s: Situation) -> Finding:
    """Opened by the route watch's periodic sweep (silence has no event); any fix ends it."""
    return Clear("fixes again")


DETECTORS: dict[str, Callable[[Situation], Finding]] = {
    "off_route": off_route,
    "unplanned_stop": unplanned_stop,
    "wrong_destination": wrong_destination,
    "late": late,
    "gps_silence": gps_silence,
    "emergency": emergency,
}
