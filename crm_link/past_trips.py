"""Past trips: each completed drive of the fleet (a vehicle from leaving a demand's origin to arriving at
its destination) kept with the path it drove and the time it still had to go at each point of it, for
the "nearest past trips" ETA and for measuring the methods (crm_link/eta_calibration.py)."""

from __future__ import annotations

import numpy as np
import psycopg

from crm_link.grid import cells, metres

PATH_STEP_M = 50.0  # a fix joins the path when it is this far from the last point kept
BUILD_BATCH = 200


def register_arrivals(conn: psycopg.Connection) -> int:
    """A past trip for every departure whose demand has arrived (extended to the latest arrival of the
    demands the vehicle carried from that departure); returns how many were added or extended."""
    with conn.transaction():
        return conn.execute("""
            INSERT INTO past_trips AS p (vehicle_id, departed_at, arrived_at, lane)
            SELECT DISTINCT ON (d.vehicle_id, dep.ts) d.vehicle_id, dep.ts, arr.ts,
                   d.origin_site_id || ' → ' || coalesce(d.destination_site_id,
                                                        round(d.destination_lat::numeric, 4) || ','
                                                        || round(d.destination_lon::numeric, 4))
            FROM demands d
            JOIN shipment_events dep ON dep.demand_id = d.id AND dep.status = 'in_transit'
            JOIN shipment_events arr ON arr.demand_id = d.id AND arr.status = 'arrived'
            WHERE d.vehicle_id IS NOT NULL AND arr.ts > dep.ts AND NOT EXISTS (
                SELECT 1 FROM past_trips q WHERE q.vehicle_id = d.vehicle_id AND q.departed_at = dep.ts
                                             AND q.arrived_at >= arr.ts)
            ORDER BY d.vehicle_id, dep.ts, arr.ts DESC
            ON CONFLICT (vehicle_id, departed_at) DO UPDATE
                SET arrived_at = excluded.arrived_at, lane = excluded.lane, path_lat = NULL, path_lon = NULL,
                    path_to_go_s = NULL, cells = NULL
                WHERE excluded.arrived_at > p.arrived_at""").rowcount


def path(t: np.ndarray, lat: np.ndarray, lon: np.ndarray, arrived: float) -> tuple[np.ndarray, ...]:
    """The fixes of a drive (in time order) thinned to points PATH_STEP_M apart, the last one kept:
    latitudes, longitudes and seconds still to go at each."""
    keep = [0] if len(t) else []
    for i in range(1, len(t)):
        if metres(lat[keep[-1]], lon[keep[-1]], lat[i], lon[i]) >= PATH_STEP_M:
            keep.append(i)
    if keep and keep[-1] != len(t) - 1:
        keep.append(len(t) - 1)
    k = np.array(keep, dtype=np.int64)
    return lat[k], lon[k], arrived - t[k]


def build_paths(conn: psycopg.Connection, limit: int = BUILD_BATCH) -> int:
    """The paths of past trips not built yet, from the vehicle's fixes between departure and arrival."""
    with conn.transaction():
        trips = conn.execute("SELECT id, vehicle_id, departed_at, arrived_at FROM past_trips WHERE cells IS NULL "
                             "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", (limit,)).fetchall()
        for trip_id, vehicle, departed, arrived in trips:
            fixes = np.array(conn.execute(
                "SELECT extract(epoch FROM ts)::float8, lat, lon FROM positions WHERE vehicle_id = %s "
                "AND ts BETWEEN %s AND %s ORDER BY ts", (vehicle, departed, arrived)).fetchall(),
                dtype=np.float64).reshape(-1, 3)
            lat, lon, to_go = path(fixes[:, 0], fixes[:, 1], fixes[:, 2], arrived.timestamp())
            conn.execute("UPDATE past_trips SET path_lat = %s, path_lon = %s, path_to_go_s = %s, cells = %s "
                         "WHERE id = %s", (lat.tolist(), lon.tolist(), to_go.tolist(),
                                           np.unique(cells(lat, lon)).tolist() if len(lat) > 1 else [], trip_id))
    return len(trips)
