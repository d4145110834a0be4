"""Watching a shipment in transit, fix by fix: ETA, `off_route`, `unplanned_stop`, `late`, and (by a
periodic sweep, as silence has no event) `gps_silence`.

Each exception is opened once per incident (exceptions.open_exception) and closes itself when its
condition clears: back inside the corridor, moving again, the ETA back inside the window, fixes
again. Thresholds are tenant defaults (settings) overridden per customer
(`customers.exception_thresholds`); defaults follow fleet practice: a corridor of a few hundred
metres held for a while (Samsara's maxOffRouteMeters + minDurationMilliseconds), a stop after
five minutes stationary (Traccar's minimalParkingDuration 300 s), GPS loss after ten minutes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import dict_row
from shapely.geometry import LineString, Point

from crm_link.exceptions import open_exception
from crm_link.geo import EARTH_RADIUS_M, Geofence, LocalProjection

EWMA_WEIGHT = 0.2  # of the newest fix in the average speed: about the last five fixes count
MOVED_M = 50.0  # a stop ends when the vehicle is moving and this far from where it stopped
ETA_HISTORY_STEP = timedelta(minutes=1)  # smaller moves of the ETA are noise, not history


@dataclass(frozen=True, slots=True)
class Thresholds:
    corridor_m: float = 300.0
    off_route_min_s: float = 120.0
    stop_speed_kmh: float = 5.0
    stop_min_s: float = 300.0
    gps_silence_s: float = 600.0
    late_grace_s: float = 900.0
    eta_min_speed_kmh: float = 15.0  # floor of the speed the ETA assumes (a parked truck is not "never")
    eta_max_speed_kmh: float = 90.0  # ceiling: a truck's legal speed, not a burst on the motorway

    def overridden(self, overrides: dict[str, Any] | None) -> Thresholds:
        known = {f.name for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{k: float(v) for k, v in (overrides or {}).items() if k in known})


@lru_cache(maxsize=4096)
def _route(geojson: str) -> tuple[LocalProjection, LineString]:
    """The planned route in metres, around its first point (cached: one parse per route, not per fix)."""
    coordinates = json.loads(geojson)["coordinates"]
    projection = LocalProjection(coordinates[0][1], coordinates[0][0])
    return projection, LineString([projection.xy(lat, lon) for lon, lat in coordinates])


def off_route_m(planned_route: dict[str, Any], lat: float, lon: float) -> float:
    projection, line = _route(json.dumps(planned_route, sort_keys=True))
    return float(line.distance(Point(projection.xy(lat, lon))))


def remaining_m(planned_route: dict[str, Any] | None, lat: float, lon: float, to_lat: float, to_lon: float) -> float:
    """Distance left along the planned route from the fix's nearest point on it, else great-circle."""
    if planned_route:
        projection, line = _route(json.dumps(planned_route, sort_keys=True))
        here = Point(projection.xy(lat, lon))
        return float(line.length - line.project(here) + line.distance(here))
    return great_circle_m(lat, lon, to_lat, to_lon)


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def eta(at: datetime, remaining: float, speed_kmh: float, t: Thresholds) -> datetime:
    speed = min(max(speed_kmh, t.eta_min_speed_kmh), t.eta_max_speed_kmh)
    return at + timedelta(seconds=remaining / (speed / 3.6))


def resolve(cur: psycopg.Cursor, demand_id: int, at: datetime, cleared: dict[str, str]) -> bool:
    """Close the demand's unresolved exceptions of the types in `cleared` (type → note), in one statement."""
    cur.execute("UPDATE exceptions e SET state = 'resolved', resolved_at = %s, note = coalesce(e.note, c.note) "
                "FROM unnest(%s::text[], %s::text[]) AS c (type, note) "
                "WHERE e.demand_id = %s AND e.type = c.type AND e.state <> 'resolved'",
                (at, list(cleared), list(cleared.values()), demand_id))
    return cur.rowcount > 0


def on_fix(cur: psycopg.Cursor, demand: dict[str, Any], fix: dict[str, Any], t: Thresholds) -> bool:
    """One accepted fix of the vehicle of an in-transit demand; True when an exception opened or closed.
    `demand` has id, vehicle_id, planned_route, delivery_to, eta, destination_site_id and the origin and
    destination geofences (o_*, d_*)."""
    cur.execute("SELECT * FROM route_watch WHERE demand_id = %s FOR UPDATE", (demand["id"],))
    watch = cur.fetchone() or {"off_route_since": None, "stopped_since": None, "stop_lat": None, "stop_lon": None,
                               "last_fix_at": None, "speed_kmh_avg": None}
    at, lat, lon, vehicle = fix["ts"], fix["lat"], fix["lon"], demand["vehicle_id"]
    if watch["last_fix_at"] is not None and at <= watch["last_fix_at"]:
        return False  # an older fix, committed late: the watch has moved on
    cleared = {"gps_silence": "fixes again"}
    changed = False
    speed = fix["speed_kmh"] if fix["speed_kmh"] is not None else 0.0
    average = speed if watch["speed_kmh_avg"] is None else (
        EWMA_WEIGHT * speed + (1 - EWMA_WEIGHT) * watch["speed_kmh_avg"])

    route = demand["planned_route"]
    if route:
        distance = off_route_m(route, lat, lon)
        if distance <= t.corridor_m:
            watch["off_route_since"] = None
            cleared["off_route"] = "back on route"
        else:
            watch["off_route_since"] = watch["off_route_since"] or at
            if (at - watch["off_route_since"]).total_seconds() >= t.off_route_min_s:
                changed |= open_exception(cur, "off_route", demand["id"], vehicle, at, {
                    "distance_m": round(distance), "since": watch["off_route_since"], "lat": lat, "lon": lon,
                    "position_id": fix["id"], "corridor_m": t.corridor_m})

    if speed < t.stop_speed_kmh:
        if watch["stopped_since"] is None:
            watch.update(stopped_since=at, stop_lat=lat, stop_lon=lon)
        stopped_s = (at - watch["stopped_since"]).total_seconds()
        if stopped_s >= t.stop_min_s and not _at_a_planned_place(demand, watch["stop_lat"], watch["stop_lon"]):
            evidence = {"since": watch["stopped_since"], "lat": watch["stop_lat"], "lon": watch["stop_lon"],
                        "position_id": fix["id"]}
            if (site := _other_site(cur, demand, watch["stop_lat"], watch["stop_lon"])) is None:
                changed |= open_exception(cur, "unplanned_stop", demand["id"], vehicle, at, evidence)
            else:
                evidence["site"] = site
                changed |= open_exception(cur, "wrong_destination", demand["id"], vehicle, at, evidence)
    elif watch["stopped_since"] is None or great_circle_m(watch["stop_lat"], watch["stop_lon"], lat, lon) > MOVED_M:
        watch.update(stopped_since=None, stop_lat=None, stop_lon=None)
        cleared["unplanned_stop"] = "moving again"

    if demand["d_lat"] is not None:
        remaining = remaining_m(route, lat, lon, demand["d_lat"], demand["d_lon"])
        predicted = eta(at, remaining, average, t)
        cur.execute("UPDATE demands SET eta = %s, eta_computed_at = %s WHERE id = %s", (predicted, at, demand["id"]))
        if demand["eta"] is None or abs(predicted - demand["eta"]) >= ETA_HISTORY_STEP:
            cur.execute("INSERT INTO eta_history (demand_id, computed_at, eta, remaining_m, speed_kmh, position_id) "
                        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (demand["id"], at, predicted, remaining, average, fix["id"]))
        if demand["delivery_to"] is not None:
            deadline = demand["delivery_to"] + timedelta(seconds=t.late_grace_s)
            if predicted > deadline:
                changed |= open_exception(cur, "late", demand["id"], vehicle, at, {
                    "eta": predicted, "delivery_to": demand["delivery_to"], "grace_s": t.late_grace_s,
                    "position_id": fix["id"]})
            else:
                cleared["late"] = "ETA back inside the window"

    changed |= resolve(cur, demand["id"], at, cleared)
    cur.execute("INSERT INTO route_watch (demand_id, off_route_since, stopped_since, stop_lat, stop_lon, last_fix_at, "
                "speed_kmh_avg) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (demand_id) DO UPDATE SET "
                "off_route_since = excluded.off_route_since, stopped_since = excluded.stopped_since, "
                "stop_lat = excluded.stop_lat, stop_lon = excluded.stop_lon, last_fix_at = excluded.last_fix_at, "
                "speed_kmh_avg = excluded.speed_kmh_avg",
                (demand["id"], watch["off_route_since"], watch["stopped_since"], watch["stop_lat"], watch["stop_lon"],
                 at, average))
    return changed


def _at_a_planned_place(demand: dict[str, Any], lat: float, lon: float) -> bool:
    """Stops at the origin or the destination are the plan, not an exception."""
    return any(demand[f"{p}_lat"] is not None and Geofence(demand[f"{p}_lat"], demand[f"{p}_lon"],
                                                           demand[f"{p}_radius"]).contains(lat, lon)
               for p in ("o", "d"))


def _other_site(cur: psycopg.Cursor, demand: dict[str, Any], lat: float, lon: float) -> str | None:
    """A known site, not the demand's destination, whose geofence holds the stop (asked only while a
    stop lasts beyond the threshold, when the track filter sends a fix a minute)."""
    cur.execute("SELECT id, lat, lon, radius_m FROM sites WHERE lat BETWEEN %s - 0.1 AND %s + 0.1 "
                "AND lon BETWEEN %s - 0.1 AND %s + 0.1 AND id IS DISTINCT FROM %s",
                (lat, lat, lon, lon, demand["destination_site_id"]))
    return next((s["id"] for s in cur.fetchall() if Geofence(s["lat"], s["lon"], s["radius_m"]).contains(lat, lon)),
                None)


def sweep_gps_silence(conn: psycopg.Connection, t: Thresholds, now: datetime) -> int:
    """Open `gps_silence` for in-transit shipments whose vehicle sent no fix for too long (the
    customer's threshold where it has one); returns how many opened."""
    opened = 0
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT d.id, d.vehicle_id, c.exception_thresholds AS overrides, "
            "coalesce(w.last_fix_at, e.ts) AS last_fix_at FROM demands d JOIN customers c ON c.id = d.customer_id "
            "LEFT JOIN route_watch w ON w.demand_id = d.id "
            "LEFT JOIN shipment_events e ON e.demand_id = d.id AND e.status = 'in_transit' "
            "WHERE d.status = 'in_transit' AND d.vehicle_id IS NOT NULL")
        for row in cur.fetchall():
            limit = t.overridden(row["overrides"]).gps_silence_s
            if row["last_fix_at"] is not None and (now - row["last_fix_at"]).total_seconds() >= limit:
                opened += open_exception(cur, "gps_silence", row["id"], row["vehicle_id"], now, {
                    "last_fix_at": row["last_fix_at"], "silent_s": round((now - row["last_fix_at"]).total_seconds())})
    return opened
