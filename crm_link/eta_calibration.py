"""Measuring the ETA methods on the fleet's past trips: every QUERY_EVERY_S of each trip, each method
predicts the time still to go from what it would have known then (the profile without the trip's own
driving, the other past trips), and is compared with what the trip took. From the errors: how far ahead
the live ratio counts (the fade that erred least), each method's mean absolute error by bucket of time
to go (the blend's weights) and the band's margins.

The band is split conformal prediction around the spread of the scenarios (conformalized quantile
regression's way, Romano et al. 2019): for each query, how far (ln) the truth fell below the lowest of
the method's ETA and the scenarios, and above the highest; the margin of each side is the quantile
ceil((m + 1) * 0.9) / m of these scores, m the trips they come from and each trip weighing the same
(the queries of one trip err alike: Dunn, Wasserman and Ramdas 2022, conformal prediction with grouped
data), so that on trips like the measured ones each side misses at most 10 % of the time. It is the
number of trips that says how well the quantile is known: below 19 the margin is the largest score
(below 9, each side then holds with probability m / (m + 1) only). A bucket with fewer than
MIN_QUERIES queries takes the wider of its own margin and the one of all the method's queries together."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import psycopg

from crm_link import eta_inputs
from crm_link.eta_model import (
    BUCKETS_S,
    LIVE_WINDOW_S,
    MIN_QUERIES,
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
    profile_times,
    spread,
    usual_stops_s,
)
from crm_link.geo import pieces_ahead
from crm_link.grid import cells, neighbourhood

FADES_M = (0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)  # "near the truck"; 0: the live ratio left out
COVERAGE = 0.9  # of each side of the p10-p90 band
QUERY_EVERY_S = 300.0
TRIPS = 300  # the newest past trips measured


@dataclass
class Query:
    actual_s: float
    trip: int
    profile_s: dict[float, float] = field(default_factory=dict)  # by fade (and inf: the persisting scenario)
    past_trips_s: float | None = None

    def by(self, fade: float, calibration: Calibration) -> dict[str, float]:
        """What a forecast with this fade would have had (eta_model.estimates, choose)."""
        out = {} if self.past_trips_s is None else {"past_trips": self.past_trips_s}
        if fade in self.profile_s:
            out |= {"profile": self.profile_s[fade], "usual": self.profile_s[0.0],
                    "persisting": self.profile_s[math.inf if fade > 0 else 0.0]}
            if self.past_trips_s is not None:
                out["blend"] = blend(out["profile"], self.past_trips_s, calibration)
        return out


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
            query = Query(float(trip.to_go[j]), i, past_trips_s=past_trips_s(found))
            predicted = profile_times(at, ahead, recent, view, (*FADES_M, math.inf))
            if predicted is not None:
                query.profile_s = dict(zip((*FADES_M, math.inf), (predicted + usual_stops_s(found)).tolist(),
                                           strict=True))
            out.append(query)
    return out


def measure(found: list[Query]) -> Calibration:
    """The calibration these queries give: the best fade, then each method's errors by bucket (the
    blend's with the weights the others' errors give)."""
    fade = min(FADES_M, key=lambda f: np.mean([abs(q.profile_s[f] - q.actual_s) for q in found
                                              if f in q.profile_s] or [np.inf]))
    measured = Calibration(_errors(found, fade, Calibration(fade_m=fade), ("profile", "past_trips")), fade)
    return Calibration(_errors(found, fade, measured, ("profile", "past_trips", "blend")), fade)


def _errors(found: list[Query], fade: float, calibration: Calibration,
            methods: tuple[str, ...]) -> dict[tuple[str, int], Measured]:
    rows: dict[str, list[tuple[int, int, float, float, float]]] = defaultdict(list)  # trip, bucket, |error|, scores
    for q in found:
        by = q.by(fade, calibration)
        actual = max(q.actual_s, 1.0)
        for method in methods:
            if method in by:
                low, high = (max(x, 1.0) for x in spread(by, method))
                rows[method].append((q.trip, bucket(by[method]), abs(by[method] - q.actual_s),
                                     math.log(low / actual), math.log(actual / high)))
    out = {}
    for method, measured in rows.items():
        trip, b, error, below, above = (np.array(x) for x in zip(*measured, strict=True))
        every = _margin(below, trip), _margin(above, trip)
        for k in range(len(BUCKETS_S) + 1):  # a bucket none fell in takes the margins of all
            own = b == k
            sides = [e if m is None else m if own.sum() >= MIN_QUERIES else max(m, e)
                     for m, e in zip((_margin(below[own], trip[own]), _margin(above[own], trip[own])), every,
                                     strict=True)]
            out[method, k] = Measured(int(own.sum()), float(error[own].mean() if own.any() else error.mean()),
                                      -sides[0], sides[1])
    return out


def _margin(scores: np.ndarray, trips: np.ndarray) -> float | None:
    """The quantile ceil((m + 1) * COVERAGE) / m (at most 1) of the scores of m trips, each trip
    weighing the same; None without scores."""
    _, trip, count = np.unique(trips, return_inverse=True, return_counts=True)
    m = len(count)
    if m == 0:
        return None
    level = min(math.ceil((m + 1) * COVERAGE) / m, 1.0)
    order = np.argsort(scores)
    weight = np.cumsum(1.0 / count[trip[order]]) / m
    return float(scores[order][min(np.searchsorted(weight, level - 1e-9), len(scores) - 1)])


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
