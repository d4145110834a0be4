"""The CRM worker's history job: fold new fixes into the speed profile, add the trips that arrived to the
past trips with their paths, and measure the ETA methods again when there are new trips (at most every
CALIBRATE_EVERY). Each step is incremental and in transactions of its own."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from crm_link import past_trips, speed_profile
from crm_link.eta_calibration import calibrate

log = logging.getLogger(__name__)
CALIBRATE_EVERY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Refreshed:
    folded: int
    trips: int
    built: int
    queries: int  # of the calibration, when it ran


def refresh(conn: psycopg.Connection) -> Refreshed:
    folded = speed_profile.fold_pending(conn)
    trips = past_trips.register_arrivals(conn)
    built = past_trips.build_paths(conn)
    queries = 0
    if built:
        with conn.transaction():
            due = conn.execute("SELECT coalesce(max(computed_at) < now() - %s, true) FROM eta_calibration",
                               (CALIBRATE_EVERY,)).fetchone()[0]
        if due:
            queries = calibrate(conn)
    if folded or trips or built:
        log.info("speed history: %d fixes folded, %d past trips added, %d paths built, calibrated on %d queries",
                 folded, trips, built, queries)
    return Refreshed(folded, trips, built, queries)


def build_all(conn: psycopg.Connection) -> Refreshed:
    """Everything at once, the calibration too whatever its age: a first build over stored history."""
    folded, trips, built = speed_profile.fold_pending(conn), past_trips.register_arrivals(conn), 0
    while n := past_trips.build_paths(conn):
        built += n
    return Refreshed(folded, trips, built, calibrate(conn))
