"""The ETA's pieces that need no database: the route ahead priced piece by piece at the hour the vehicle
gets to each, cut where it enters the destination's geofence; past trips matched to that geofence; and
the p10-p90 band, the scenarios' spread widened by margins measured on past trips, each trip counting
once."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_link.eta_calibration import _margin
from crm_link.eta_model import Ahead, Calibration, Fixes, Measured, PastTrip, ProfileView, choose, profile_times
from crm_link.grid import ANY_HOUR, hour_of_week

LAT, LON = 31.2, 121.4
EAST_M = 1 / 95_300  # degrees of longitude a metre at 31° N (about)


def ahead_east(lengths: list[float]) -> Ahead:
    """Pieces of these lengths eastwards from (LAT, LON), as their middles."""
    ends = np.cumsum(lengths)
    middles = ends - np.asarray(lengths) / 2
    return Ahead(0.0, np.full(len(lengths), LAT), LON + middles * EAST_M, np.asarray(lengths, dtype=np.float64))


def piece_by_piece(at: float, ahead: Ahead, profile: ProfileView) -> float:
    """The time to go as the route is driven: each piece at the pace of the hour the vehicle reaches it."""
    elapsed = 0.0
    for c, length in zip(ahead.cells.tolist(), ahead.length.tolist(), strict=True):
        elapsed += length * profile.pace(c, hour_of_week(at + elapsed))
    return elapsed


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(20.0, 100.0), min_size=1, max_size=120), st.floats(0.0, 7200.0),
       st.lists(st.floats(1.0, 30.0), min_size=3, max_size=3))
def test_each_piece_is_priced_at_the_hour_the_vehicle_reaches_it(lengths: list[float], offset_s: float,
                                                                 kmh_by_hour: list[float]) -> None:
    at = 1_793_577_600.0 + offset_s  # a Monday; the route may take hours at these speeds
    ahead = ahead_east(lengths)
    rows = {(int(c), ANY_HOUR): (1000.0, 1000.0 / 10 * 3.6) for c in np.unique(ahead.cells)}
    for k, kmh in enumerate(kmh_by_hour):
        h = hour_of_week(at + 3600 * k)
        rows |= {(int(c), h): (1e6, 1e6 / kmh * 3.6) for c in np.unique(ahead.cells)}
    profile = ProfileView(rows, 1e6, 1e6 / 10 * 3.6, 1000, None)
    recent = Fixes(np.array([at]), np.array([LAT]), np.array([LON]))
    usual, = profile_times(at, ahead, recent, profile, (0.0,))
    assert usual == pytest.approx(piece_by_piece(at, ahead, profile), rel=1e-9)


def test_the_route_ahead_ends_where_the_destinations_geofence_begins() -> None:
    ahead = ahead_east([100.0] * 20)  # 2 km; the destination at its end, a geofence of 250 m
    cut = ahead.until(LAT, LON + 2000 * EAST_M, 250.0)
    assert len(cut.length) == 17 and ahead.until(LAT, LON + 2000 * EAST_M, 0.0).length.sum() == 2000


def test_a_past_trip_arrives_where_it_enters_the_destinations_circle_or_came_nearest() -> None:
    x = np.arange(0.0, 3001.0, 50.0)  # a path eastwards, ending 3 km on
    trip = PastTrip(np.full(len(x), LAT), LON + x * EAST_M, (x[-1] - x) / 10, 0.0)
    dest = (LAT, LON + 3100 * EAST_M)  # 100 m past the path's end
    assert trip.match(LAT, LON + 500 * EAST_M, *dest, 300.0) == (10, 56)  # entered at 2 800 m
    assert trip.match(LAT, LON + 500 * EAST_M, *dest) == (10, 60)  # no circle: where it came nearest
    assert trip.match(LAT, LON + 500 * EAST_M, LAT, LON + 3500 * EAST_M) is None  # 500 m off


def test_a_trip_with_many_queries_counts_once_in_the_margin() -> None:
    singles = np.linspace(0.0, 0.19, 20)  # twenty trips asked once each
    scores = np.r_[singles, np.full(100, 1.0)]  # and one asked a hundred times, all far off
    trips = np.r_[np.arange(20), np.full(100, 20)]
    # 21 trips: the quantile ceil(22 * 0.9) / 21 = 20 / 21 of trips weighing the same falls on the singles
    assert _margin(scores, trips) == pytest.approx(0.19)
    assert np.quantile(scores, 0.9) == 1.0  # counted query by query, the one trip would set it


def test_below_nineteen_trips_the_margin_is_the_largest_score() -> None:
    scores = np.linspace(-0.2, 0.3, 18)
    assert _margin(scores, np.arange(18)) == pytest.approx(0.3)
    assert _margin(np.r_[scores, 0.0], np.arange(19)) == pytest.approx(scores[-2])
    assert _margin(np.array([]), np.array([], dtype=np.int64)) is None


def test_the_band_spans_the_scenarios_widened_by_the_measured_margins() -> None:
    calibration = Calibration({("blend", 1): Measured(50, 60.0, math.log(0.9), math.log(1.2))}, 2000.0)
    by = {"speed": 900.0, "profile": 1400.0, "past_trips": 1000.0, "usual": 1100.0, "persisting": 2600.0}
    f = choose(by, calibration)
    assert f.method == "blend" and 1000 < f.to_go_s < 1400
    assert (f.p10_s, f.p90_s) == pytest.approx((1000 * 0.9, 2600 * 1.2))  # the jam may last: persisting


def test_a_band_never_leaves_out_the_eta_it_goes_with() -> None:
    calibration = Calibration({("profile", 0): Measured(50, 30.0, 0.05, -0.05)})  # margins that narrow
    f = choose({"speed": 600.0, "profile": 500.0, "usual": 500.0, "persisting": 500.0}, calibration)
    assert f.p10_s == f.to_go_s == f.p90_s == 500.0


def test_without_history_the_band_is_the_default_around_todays_eta() -> None:
    f = choose({"speed": 1000.0, "naive": 700.0}, Calibration())
    assert f.method == "speed" and (f.p10_s, f.p90_s) == pytest.approx((800.0, 1350.0))

