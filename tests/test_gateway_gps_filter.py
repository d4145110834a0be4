"""The track filter: invalid fixes dropped, stationary fixes thinned, the shape of a drive kept."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.types import Fix
from firmware_configs.profile import GpsFilter
from gateway.gps_filter import TrackFilter, distance_m

T0 = datetime(2026, 11, 2, 8, 0, 0, tzinfo=UTC)
LAT0, LON0 = 31.2304, 121.4737
M_PER_DEG = 111_195.0  # metres per degree of latitude on the filter's sphere


def fix(t: float, north_m: float = 0.0, east_m: float = 0.0, speed: float = 0.0, course: float | None = None,
        hdop: float | None = 0.9) -> Fix:
    return Fix(ts=T0 + timedelta(seconds=t), lat=LAT0 + north_m / M_PER_DEG,
               lon=LON0 + east_m / (M_PER_DEG * math.cos(math.radians(LAT0))),
               speed_kmh=speed, course_deg=course, hdop=hdop, sats=9, quality=1)


def kept(track: TrackFilter, fixes: list[Fix]) -> list[Fix]:
    return [f for f in fixes if track.offer(f, now=f.ts)[0]]  # the gateway's clock agrees with the receiver


def test_a_parked_truck_reports_one_fix_a_minute() -> None:
    track = TrackFilter(GpsFilter())
    out = kept(track, [fix(t, north_m=(t % 3) * 0.5) for t in range(300)])  # 1 Hz with a little jitter
    assert [(f.ts - T0).total_seconds() for f in out] == [0, 60, 120, 180, 240]
    assert track.stats.dropped["thinned"] == 295


def test_a_drive_keeps_turns_and_a_point_every_100_m() -> None:
    track = TrackFilter(GpsFilter())
    speed = 50.0  # km/h, 13.9 m/s
    step = speed / 3.6
    north = [fix(t, north_m=t * step, speed=speed, course=0.0) for t in range(30)]
    east = [fix(30 + t, north_m=29 * step, east_m=(t + 1) * step, speed=speed, course=90.0) for t in range(10)]
    out = kept(track, north + east)
    # 100 m takes 7.2 s: every 8th second is kept; the turn at t=30 is kept at once, not 100 m later
    assert [(f.ts - T0).total_seconds() for f in out] == [0, 8, 16, 24, 30, 38]


def test_bad_fixes_are_dropped_by_reason_and_gaps_counted() -> None:
    track = TrackFilter(GpsFilter())
    out = kept(track, [
        fix(0, speed=40, course=0),
        fix(1, north_m=11, speed=40, course=0, hdop=9.5),  # poor geometry
        fix(2, north_m=2000, speed=40, course=0),  # 2 km in 2 s: a multipath jump
        fix(2, north_m=22, speed=40, course=0),  # plausible again: measured from the last valid fix
        fix(3, north_m=33, speed=40, course=0),
        fix(60, north_m=700, speed=40, course=0),  # after a tunnel
    ])
    assert [(f.ts - T0).total_seconds() for f in out] == [0, 60]
    assert track.stats.dropped == {"hdop": 1, "jump": 1, "thinned": 2}
    assert track.stats.gaps == 1


def test_a_fix_that_does_not_advance_in_time_is_dropped() -> None:
    track = TrackFilter(GpsFilter())
    assert kept(track, [fix(5), fix(5), fix(4)]) == [fix(5)]
    assert track.stats.dropped["time not advancing"] == 2


def test_moving_off_after_a_stop_is_kept_at_once() -> None:
    track = TrackFilter(GpsFilter())
    out = kept(track, [fix(0), fix(1), fix(2, north_m=3, speed=11, course=0)])
    assert [(f.ts - T0).total_seconds() for f in out] == [0, 2]


steps = st.lists(st.tuples(st.floats(0.0, 5.0),  # seconds since the previous fix (0 = repeated epoch)
                           st.floats(-300, 300), st.floats(-300, 300),  # metres moved north, east
                           st.floats(0, 130), st.one_of(st.none(), st.floats(0, 359.9)),
                           st.one_of(st.none(), st.floats(0.5, 12))), max_size=80)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_whatever_the_receiver_says_the_kept_track_is_plausible(moves: list) -> None:
    s = GpsFilter()
    track = TrackFilter(s)
    t = north = east = 0.0
    offered = []
    for dt, dn, de, speed, course, hdop in moves:
        t, north, east = t + dt, north + dn, east + de
        offered.append(fix(t, north, east, speed, course, hdop))
    out = kept(track, offered)
    assert track.stats.accepted == len(out)
    assert len(out) + sum(track.stats.dropped.values()) == len(offered)  # every fix accounted for
    assert all(f.hdop is None or f.hdop <= s.max_hdop for f in out)
    for a, b in pairwise(out):
        dt = (b.ts - a.ts).total_seconds()
        assert dt > 0
        assert distance_m(a, b) / dt * 3.6 <= s.max_speed_kmh * (1 + 1e-9)  # no jump survives
        if (a.speed_kmh or 0) < s.stationary_kmh and (b.speed_kmh or 0) < s.stationary_kmh:
            assert dt >= s.stationary_period_s  # a parked truck does not flood the outbox


def _drive(n: int) -> list[Fix]:
    return [fix(10 * t, north_m=100 * t, speed=36, course=0) for t in range(n)]


def test_a_fix_far_ahead_of_the_gateway_clock_is_dropped_and_the_track_goes_on() -> None:
    """One fix dated 20 h ahead used to become the last valid fix, and every later one was dropped as
    'time not advancing' until the gateway restarted."""
    track = TrackFilter(GpsFilter())
    good = _drive(10)
    bad = fix(35 + 20 * 3600, north_m=350, speed=36, course=0)
    arrivals = [*((f, f.ts) for f in good[:4]), (bad, good[3].ts), *((f, f.ts) for f in good[4:])]
    assert [f for f, now in arrivals if track.offer(f, now)[0]] == good
    assert track.stats.dropped["ahead of the gateway clock"] == 1


def test_a_bad_time_the_clock_could_not_catch_is_left_behind_after_a_few_fixes() -> None:
    """The gateway's own clock was as wrong as the fix: the track starts again from the fixes that follow."""
    settings = GpsFilter()
    track = TrackFilter(settings)
    good = _drive(30)
    bad = fix(35 + 20 * 3600, north_m=350, speed=36, course=0)
    out = [f for f in [*good[:4], bad, *good[4:]] if track.offer(f, now=f.ts)[0]]
    resumed = good[4 + settings.reanchor_after - 1]
    assert out == [*good[:4], bad, *good[good.index(resumed):]]
    assert track.stats.dropped["time not advancing"] == settings.reanchor_after - 1 and track.stats.reanchored == 1


def test_a_gateway_clock_days_behind_does_not_cost_a_single_good_fix() -> None:
    """GPS time is the better clock: a truck box whose own clock is three days slow keeps its track."""
    track = TrackFilter(GpsFilter())
    good = _drive(10)
    assert [f for f in good if track.offer(f, now=f.ts - timedelta(days=3))[0]] == good
