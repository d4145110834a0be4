"""What an ETA forecast reads from the database: the vehicle's recent fixes, the speed profile of the
cells ahead, the past trips through its place to its destination, and the calibration of the methods.
Each reads through the caller's connection, in the caller's transaction.

A correlator asks for the same cells and past trips fix after fix, so the process keeps what it read:
a past trip's path never changes once built (a trip extended to a later arrival is read again), and
the profile's rows are kept while the profile is as of the same fold (`speed_totals.folded_at`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg

from crm_link.eta_model import LIVE_WINDOW_S, Calibration, Fixes, Measured, PastTrip, ProfileView, median_kmh
from crm_link.grid import ANY_HOUR, HOURS_OF_WEEK, cell_of, hours_of_week, neighbourhood

RECENT_TRIPS = 30  # the newest past trips through here to there are enough to find the K most alike


def recent_fixes(conn: psycopg.Connection, vehicle_id: str, at_s: float, lat: float, lon: float) -> Fixes:
    """The vehicle's fixes of the live window up to `at_s` (none after it), ending with this one."""
    before = conn.execute("SELECT extract(epoch FROM ts)::float8, lat, lon FROM positions WHERE vehicle_id = %s "
                          "AND ts > to_timestamp(%s) AND ts < to_timestamp(%s) ORDER BY ts",
                          (vehicle_id, at_s - LIVE_WINDOW_S, at_s)).fetchall()
    rows = np.array([*before, (at_s, lat, lon)], dtype=np.float64)
    return Fixes(rows[:, 0], rows[:, 1], rows[:, 2])


CACHED = 20_000  # paths, or profile rows of a database, kept at most (then read afresh)
_paths: dict[tuple[str, int, float], PastTrip] = {}  # (database, id, arrival) → path
_rows: dict[str, tuple[object, dict[tuple[int, int], tuple[float, float]]]] = {}  # database → (as of, rows)


def _database(conn: psycopg.Connection) -> str:
    return f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"


@dataclass(frozen=True)
class Overview:
    """What the history holds over all: the profile's totals, the calibration, whether there are past trips."""

    metres: float
    seconds: float
    pairs: int
    median_kmh: float | None
    folded_at: object
    calibration: Calibration
    trips: bool


def overview(conn: psycopg.Connection) -> Overview:
    """In one round trip: without any history, the forecast stops here."""
    m, s, pairs, counts, folded_at, measured, trips = conn.execute(
        "SELECT t.metres, t.seconds, t.pairs, t.speed_counts, t.folded_at, "
        "(SELECT json_agg(c) FROM eta_calibration c), EXISTS (SELECT FROM past_trips WHERE cardinality(cells) > 1) "
        "FROM (SELECT) AS one LEFT JOIN speed_totals t ON true").fetchone()
    fades = [r["fade_m"] for r in measured or () if r["fade_m"] is not None]
    calibration = Calibration({(r["method"], r["bucket"]): Measured(r["queries"], r["mae_s"], r["q10"], r["q90"])
                               for r in measured or ()}, *fades[:1])
    return Overview(m or 0.0, s or 0.0, pairs or 0, median_kmh(counts) if counts else None, folded_at, calibration,
                    trips)


def profile(conn: psycopg.Connection, seen: Overview, cell_ids: list[int], hours: list[int] | None) -> ProfileView:
    """The profile rows of these cells, at these hours of the week and over all hours (every hour,
    uncached, when `hours` is None), with the totals."""
    if hours is None:
        found = conn.execute("SELECT cell, hour_of_week, metres, seconds FROM speed_profile WHERE cell = ANY(%s)",
                             (cell_ids,)).fetchall()
        rows = {(c, h): (m, s) for c, h, m, s in found}
    else:
        as_of, rows = _rows.get(_database(conn), (None, {}))
        if as_of != seen.folded_at or len(rows) > CACHED:
            as_of, rows = seen.folded_at, {}
            _rows[_database(conn)] = as_of, rows
        wanted = [(c, h) for c in cell_ids for h in (*hours, ANY_HOUR) if (c, h) not in rows]
        if wanted:
            rows |= dict.fromkeys(wanted, (0.0, 0.0))  # none stored: no driving there yet
            rows |= {(c, h): (m, s) for c, h, m, s in conn.execute(
                "SELECT cell, hour_of_week, metres, seconds FROM speed_profile "
                "WHERE cell = ANY(%s) AND hour_of_week = ANY(%s)",
                (sorted({c for c, _ in wanted}), sorted({h for _, h in wanted}))).fetchall()}
    return ProfileView(rows, seen.metres, seen.seconds, seen.pairs, seen.median_kmh)


def hours_ahead(at_s: float, remaining_m: float, slowest_kmh: float) -> list[int]:
    """The hours of the week the vehicle may be on the road until it arrives at no less than `slowest_kmh`."""
    start = at_s // 3600
    end = min((at_s + remaining_m / (slowest_kmh / 3.6)) // 3600, start + HOURS_OF_WEEK - 1)
    return sorted(set(hours_of_week(np.arange(start, end + 1) * 3600.0).tolist()))


def past_trips(conn: psycopg.Connection, lat: float, lon: float, dest_lat: float, dest_lon: float) -> list[PastTrip]:
    """The newest past trips whose paths pass near the vehicle's place and near its destination."""
    found = conn.execute("SELECT id, extract(epoch FROM arrived_at)::float8 FROM past_trips "
                         "WHERE cells && %s::bigint[] AND cells && %s::bigint[] ORDER BY arrived_at DESC LIMIT %s",
                         (neighbourhood(cell_of(lat, lon)), neighbourhood(cell_of(dest_lat, dest_lon)),
                          RECENT_TRIPS)).fetchall()
    database = _database(conn)
    missing = [trip_id for trip_id, arrived in found if (database, trip_id, arrived) not in _paths]
    if missing:
        if len(_paths) > CACHED:
            _paths.clear()
        _paths.update({(database, trip_id, trip.arrived_at): trip
                       for trip_id, trip in _trips(conn, "id = ANY(%s)", (missing,), len(missing))})
    return [_paths[database, trip_id, arrived] for trip_id, arrived in found]


def newest_trips(conn: psycopg.Connection, limit: int) -> list[PastTrip]:
    """The newest past trips with a path."""
    return [trip for _, trip in _trips(conn, "cardinality(cells) > 1", (), limit)]


def _trips(conn: psycopg.Connection, where: str, params: tuple, limit: int) -> list[tuple[int, PastTrip]]:
    found = conn.execute("SELECT id, path_lat, path_lon, path_to_go_s, extract(epoch FROM arrived_at)::float8 "
                         f"FROM past_trips WHERE {where} ORDER BY arrived_at DESC LIMIT %s", (*params, limit))
    return [(i, PastTrip(np.array(a), np.array(o), np.array(g, dtype=np.float64), t)) for i, a, o, g, t in found]
