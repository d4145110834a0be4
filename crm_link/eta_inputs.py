"""What an ETA forecast reads from the database: the vehicle's recent fixes, the speed profile of the
cells ahead, the past trips through its place to its destination, and the calibration of the methods.
Each reads through a plain cursor of the caller's connection, in the caller's transaction."""

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


@dataclass(frozen=True)
class Overview:
    """What the history holds over all: the profile's totals, the calibration, whether there are past trips."""

    metres: float
    seconds: float
    pairs: int
    median_kmh: float | None
    calibration: Calibration
    trips: bool


def overview(conn: psycopg.Connection) -> Overview:
    """In one round trip: without any history, the forecast stops here."""
    m, s, pairs, counts, measured, trips = conn.execute(
        "SELECT t.metres, t.seconds, t.pairs, t.speed_counts, "
        "(SELECT json_agg(c) FROM eta_calibration c), EXISTS (SELECT FROM past_trips WHERE cardinality(cells) > 1) "
        "FROM (SELECT) AS one LEFT JOIN speed_totals t ON true").fetchone()
    fades = [r["fade_m"] for r in measured or () if r["fade_m"] is not None]
    calibration = Calibration({(r["method"], r["bucket"]): Measured(r["queries"], r["mae_s"], r["q10"], r["q90"])
                               for r in measured or ()}, *fades[:1])
    return Overview(m or 0.0, s or 0.0, pairs or 0, median_kmh(counts) if counts else None, calibration, trips)


def profile(conn: psycopg.Connection, seen: Overview, cell_ids: list[int], hours: list[int] | None) -> ProfileView:
    """The profile rows of these cells, at these hours of the week and over all hours (every hour when
    `hours` is None), with the totals."""
    wanted = None if hours is None else [*hours, ANY_HOUR]
    found = conn.execute("SELECT cell, hour_of_week, metres, seconds FROM speed_profile WHERE cell = ANY(%(cells)s) "
                         "AND (%(hours)s::smallint[] IS NULL OR hour_of_week = ANY(%(hours)s))",
                         {"cells": cell_ids, "hours": wanted}).fetchall()
    return ProfileView({(c, h): (m, s) for c, h, m, s in found}, seen.metres, seen.seconds, seen.pairs,
                       seen.median_kmh)


def hours_ahead(at_s: float, remaining_m: float, slowest_kmh: float) -> list[int]:
    """The hours of the week the vehicle may be on the road until it arrives at no less than `slowest_kmh`."""
    start = at_s // 3600
    end = min((at_s + remaining_m / (slowest_kmh / 3.6)) // 3600, start + HOURS_OF_WEEK - 1)
    return sorted(set(hours_of_week(np.arange(start, end + 1) * 3600.0).tolist()))


def past_trips(conn: psycopg.Connection, lat: float, lon: float, dest_lat: float, dest_lon: float) -> list[PastTrip]:
    """The newest past trips whose paths pass near the vehicle's place and near its destination."""
    return _trips(conn, "cells && %s::bigint[] AND cells && %s::bigint[]",
                  (neighbourhood(cell_of(lat, lon)), neighbourhood(cell_of(dest_lat, dest_lon))), RECENT_TRIPS)


def newest_trips(conn: psycopg.Connection, limit: int) -> list[PastTrip]:
    """The newest past trips with a path."""
    return _trips(conn, "cardinality(cells) > 1", (), limit)


def _trips(conn: psycopg.Connection, where: str, params: tuple, limit: int) -> list[PastTrip]:
    found = conn.execute("SELECT path_lat, path_lon, path_to_go_s, extract(epoch FROM arrived_at)::float8 "
                         f"FROM past_trips WHERE {where} ORDER BY arrived_at DESC LIMIT %s", (*params, limit))
    return [PastTrip(np.array(a), np.array(o), np.array(g, dtype=np.float64), t) for a, o, g, t in found]
