"""Measuring the ETA methods on the fleet's past trips: every QUERY_EVERY_S of each trip, each method
predicts the time still to go from what it would have known then (the profile without the trip's own
driving, the other past trips), and is compared with what the trip took. From the errors: how far ahead
the live ratio counts (the fade that erred least), each method's mean absolute error by bucket of time
to go (the blend's weights) and the quantiles of ln(actual / predicted) (the p10-p90 band)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import psycopg

from crm_link import eta_inputs
from crm_link.eta_model import (
    LIVE_WINDOW_S,
    PIECE_M,
    Ahead,
    Calibration,
    Fixes,
    Measured,
    PastTrip,
    ProfileView,
    blend,
    bucket,
    passages,
    past_trips_s,
    profile_s,
    usual_stops_s,
)
from crm_link.geo import pieces_ahead
from crm_link.grid import cells, neighbourhood

FADES_M = (0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)  # "near the truck"; 0: the live ratio left out
QUERY_EVERY_S = 300.0
TRIPS = 300  # the newest past trips measured


@dataclass
class Query:
    actual_s: float
    profile_s: dict[float, float] = field(default_factory=dict)  # by fade
    past_trips_s: float | None = None


def queries(trips: list[PastTrip], profile: ProfileView) -> list[Query]:
    """Each method's prediction every QUERY_EVERY_S of every trip, from the others and the profile
    without the trip."""
    near = [set(cells(t.lat, t.lon).tolist()) for t in trips]
    out = []
    for i, trip in enumerate(trips):
        if len(trip.to_go) < 2:
            continue
        view = profile.without(trip)
        dest = (float(trip.lat[-1]), float(trip.lon[-1]))
        route = {"type": "LineString", "coordinates": [[float(o), float(a)] for a, o in zip(trip.lat, trip.lon,
                                                                                              strict=True)]}
        ends = set(neighbourhood(int(cells(*dest))))
        for q in np.arange(QUERY_EVERY_S, trip.to_go[0], QUERY_EVERY_S):
            j = int(np.argmax(trip.to_go <= q))
            at = trip.arrived_at - trip.to_go[j]
            window = (trip.to_go >= trip.to_go[j]) & (trip.to_go <= trip.to_go[j] + LIVE_WINDOW_S)
            recent = Fixes(trip.arrived_at - trip.to_go[window], trip.lat[window], trip.lon[window])
            here = set(neighbourhood(int(cells(trip.lat[j], trip.lon[j]))))
            others = [t for k, t in enumerate(trips) if k != i and near[k] & here and near[k] & ends]
            found = passages(others, at, recent, dest)
            ahead = Ahead(*pieces_ahead(route, float(trip.lat[j]), float(trip.lon[j]), PIECE_M))
            query = Query(float(trip.to_go[j]), past_trips_s=past_trips_s(found))
            for fade in FADES_M:
                predicted = profile_s(at, ahead, recent, view, fade)
                if predicted is not None:
                    query.profile_s[fade] = predicted + usual_stops_s(found)
            out.append(query)
    return out


def measure(found: list[Query]) -> Calibration:
    """The calibration these queries give: the best fade, then each method's errors by bucket."""
    fade = min(FADES_M, key=lambda f: np.mean([abs(q.profile_s[f] - q.actual_s) for q in found
                                              if f in q.profile_s] or [np.inf]))
    predictions: dict[str, list[tuple[float, float]]] = defaultdict(list)  # method → (predicted, actual)
    for q in found:
        if fade in q.profile_s:
            predictions["profile"].append((q.profile_s[fade], q.actual_s))
        if q.past_trips_s is not None:
            predictions["past_trips"].append((q.past_trips_s, q.actual_s))
    by = _errors(predictions)
    measured = Calibration(by, fade)
    for q in found:
        if fade in q.profile_s and q.past_trips_s is not None:
            predictions["blend"].append((blend(q.profile_s[fade], q.past_trips_s, measured), q.actual_s))
    return Calibration(_errors(predictions), fade)


def _errors(predictions: dict[str, list[tuple[float, float]]]) -> dict[tuple[str, int], Measured]:
    by: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for method, pairs in predictions.items():
        for predicted, actual in pairs:
            by[method, bucket(predicted)].append((max(predicted, 1.0), max(actual, 1.0)))
    out = {}
    for key, pairs in by.items():
        p, a = np.array(pairs).T
        ratio = np.log(a / p)
        out[key] = Measured(len(pairs), float(np.mean(np.abs(a - p))), float(np.quantile(ratio, 0.1)),
                            float(np.quantile(ratio, 0.9)))
    return out


def calibrate(conn: psycopg.Connection) -> int:
    """Measure the methods on the newest past trips and keep the result (eta_calibration); returns how
    many queries it rests on."""
    with conn.transaction():
        trips = eta_inputs.newest_trips(conn, TRIPS)
        if not trips:
            return 0
        view = eta_inputs.profile(conn, eta_inputs.overview(conn),
                                  np.unique(np.concatenate([cells(t.lat, t.lon) for t in trips])).tolist(), None)
    found = queries(trips, view)
    result = measure(found)
    with conn.transaction():
        conn.execute("DELETE FROM eta_calibration")
        for (method, b), m in result.by.items():
            conn.execute("INSERT INTO eta_calibration (method, bucket, queries, mae_s, q10, q90, fade_m) "
                         "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                         (method, b, m.queries, m.mae_s, m.q10, m.q90, result.fade_m if method == "profile" else None))
    return len(found)
