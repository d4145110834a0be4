"""Raw reads become one observation per tag passage, with direction and cross-door arbitration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_configs.profile import Smoothing
from gateway.smoothing import Smoother

T0 = datetime(2026, 11, 2, 8, 0, 0, tzinfo=UTC)
EPCS = [f"3074257BF7194E40000{i:05X}" for i in range(60)]


def _ms(n: float) -> datetime:
    return T0 + timedelta(milliseconds=n)


def test_pallet_of_60_cases_leaving_through_door_3_with_door_4_hearing_them_weakly() -> None:
    smoother = Smoother(Smoothing())
    for i, epc in enumerate(EPCS):
        t = i * 20  # cases pass one after another
        for k in range(4):  # inner antenna peaks first (hall side), then the outer one: going out
            smoother.add(epc, "wh-sh1/door-03", "door-03", 2, "inner", -48.0 - k, _ms(t + k * 10))
            smoother.add(epc, "wh-sh1/door-03", "door-03", 1, "outer", -52.0 + k, _ms(t + 400 + k * 10))
            smoother.add(epc, "wh-sh1/door-04", "door-04", 1, "outer", -70.0, _ms(t + 200 + k * 10))
    assert smoother.due(_ms(1500)) == []  # every case was read less than 2 s ago
    observations = smoother.due(_ms(60 * 20 + 3000))
    assert len(observations) == 60
    assert {o["read_point"] for o in observations} == {"wh-sh1/door-03"}
    assert {o["direction"] for o in observations} == {"out"}
    assert sorted(o["epc"] for o in observations) == sorted(EPCS)
    assert all(o["reads"] == 8 and o["rssi_dbm"] == -48.0 and o["antenna"] == 2 for o in observations)
    assert smoother.arbitrated == 60


def test_a_tag_passing_inward_and_an_ambiguous_one() -> None:
    smoother = Smoother(Smoothing())
    smoother.add("AA01", "s/d", "r", 1, "outer", -40.0, _ms(0))
    smoother.add("AA01", "s/d", "r", 2, "inner", -41.0, _ms(300))
    smoother.add("AA02", "s/d", "r", 1, "outer", -40.0, _ms(0))
    smoother.add("AA02", "s/d", "r", 1, "outer", -45.0, _ms(100))
    directions = {o["epc"]: o["direction"] for o in smoother.due(_ms(5000))}
    assert directions == {"AA01": "in", "AA02": None}


def test_stray_reads_are_suppressed() -> None:
    smoother = Smoother(Smoothing(min_reads=2, min_rssi_dbm=-75))
    smoother.add("BB01", "s/d", "r", 1, None, -50.0, _ms(0))  # one read only
    smoother.add("BB02", "s/d", "r", 1, None, -80.0, _ms(0))
    smoother.add("BB02", "s/d", "r", 1, None, -79.0, _ms(10))  # too weak
    assert smoother.due(_ms(5000)) == []
    assert smoother.stray == 2


def test_a_parked_tag_is_re_reported_after_the_maximum_hold() -> None:
    smoother = Smoother(Smoothing(max_hold_s=10))
    reported = []
    for second in range(25):
        smoother.add("CC01", "s/d", "r", 1, None, -50.0, _ms(second * 1000))
        smoother.add("CC01", "s/d", "r", 1, None, -50.0, _ms(second * 1000 + 500))
        reported += smoother.due(_ms(second * 1000 + 600))
    assert len(reported) == 2
    assert reported[0]["first_seen"] == "2026-11-02T08:00:00.000Z"


reads = st.lists(st.tuples(st.integers(0, 3_000),  # ms since the previous read
                           st.sampled_from(["DD01", "DD02", "DD03"]), st.sampled_from([1, 2]),
                           st.integers(-90, -30)), max_size=120)


@settings(max_examples=150, deadline=None)
@given(reads, st.sampled_from([0.5, 2.0]), st.sampled_from([1.0, 5.0]), st.integers(1, 20))
def test_every_read_lands_in_exactly_one_bounded_passage(stream: list, absent_s: float, max_hold_s: float,
                                                         tick_every: int) -> None:
    smoother = Smoother(Smoothing(absent_s=absent_s, max_hold_s=max_hold_s, min_reads=1, min_rssi_dbm=-100))
    t = 0
    seen: list[tuple[str, int, int]] = []
    observations = []
    for i, (gap, epc, antenna, rssi) in enumerate(stream):
        t += gap
        if i % tick_every == 0:  # a busy loop may hand over many reads between two ticks
            observations += smoother.due(_ms(t))
        smoother.add(epc, "s/d", "r", antenna, "outer" if antenna == 1 else "inner", float(rssi), _ms(t))
        seen.append((epc, t, rssi))
    observations += smoother.due(_ms(t + 10_000))
    assert smoother.open_windows == 0
    assert sum(o["reads"] for o in observations) == len(seen)  # nothing lost, nothing counted twice
    for epc in {e for e, _, _ in seen}:
        mine = [o for o in observations if o["epc"] == epc]
        for before, after in pairwise(mine):
            assert before["last_seen"] < after["first_seen"]  # passages of one tag do not overlap
        for o in mine:
            first, last = (datetime.fromisoformat(o[k]) for k in ("first_seen", "last_seen"))
            assert timedelta(0) <= last - first < timedelta(seconds=max_hold_s)
            inside = [r for e, ms, r in seen if e == epc and first <= _ms(ms) <= last]
            assert o["reads"] == len(inside) and o["rssi_dbm"] == max(inside)
