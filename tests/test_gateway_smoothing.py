"""Raw reads become one observation per tag passage, with direction and cross-door arbitration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
