"""The speed history: fixes folded into the speed profile (the same whether folded at once or bit by bit,
short stops in, dwells out), built incrementally from `positions` by the CRM worker's history job, and
the past trips with their paths."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_link import eta_inputs, history_job, speed_profile
from crm_link.correlate import process_pending
from crm_link.demands import upsert_demand
from crm_link.grid import ANY_HOUR, cell_of, hours_of_week
from crm_link.speed_profile import DWELL_S, Sums, fold
from tests.test_crm_status import CUSTOMER_SITE, ITEMS, T0, WAREHOUSE, demand, observe, world

_seq = itertools.count(1)
EAST_M = 1 / 95_300  # degrees of longitude a metre at 31° N (about)


def drive(legs: list[tuple[float, float]], start: float = 1_793_577_600.0, period_s: float = 10.0,
          lat: float = 31.2, lon: float = 121.4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixes every period_s eastwards through legs of (seconds, km/h)."""
    t, x = [start], [0.0]
    for seconds, kmh in legs:
        for _ in range(int(seconds // period_s)):
            t.append(t[-1] + period_s)
            x.append(x[-1] + kmh / 3.6 * period_s)
    return np.array(t), np.full(len(t), lat), lon + np.array(x) * EAST_M


def total(*parts: Sums) -> tuple[int, float, float, list[int]]:
    """Pairs, metres, seconds and speed counts over every cell and hour (the ANY_HOUR rows)."""
    rows = Sums.merge(list(parts))
    every = rows.hour == ANY_HOUR
    return (int(rows.pairs[every].sum()), round(float(rows.metres[every].sum()), 6),
            round(float(rows.seconds[every].sum()), 6), rows.counts[every].sum(axis=0).tolist())


legs = st.lists(st.tuples(st.sampled_from([20.0, 60.0, 200.0, 400.0]), st.sampled_from([0.0, 2.0, 30.0, 70.0])),
                min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(legs, st.data())
def test_folding_bit_by_bit_gives_the_profile_of_folding_at_once(trip: list[tuple[float, float]],
                                                                  data: st.DataObject) -> None:
    t, lat, lon = drive(trip)
    vehicle = np.full(len(t), 7, dtype=np.int64)
    whole, whole_tails = fold(vehicle, t, lat, lon, {})
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(t) - 1, 1)), max_size=3)))
    parts, tails = [], {}
    for a, b in itertools.pairwise([0, *cuts, len(t)]):
        part, moved = fold(vehicle[a:b], t[a:b], lat[a:b], lon[a:b], tails)
        parts.append(part)
        tails |= moved
    assert total(*parts) == total(whole)
    assert flat(tails) == pytest.approx(flat(whole_tails))


def flat(tails: dict) -> list[float]:
    """The tails' numbers in a row (a stop's sums may differ in the last bits by the order added)."""
    return [x for tail in tails.values() for x in (*dataclasses.astuple(tail)[:3], *(
        dataclasses.astuple(tail.stop) if tail.stop else (-1,) * 6))]


def test_a_short_stop_is_traffic_and_a_dwell_is_not() -> None:
    short = drive([(300, 36.0), (120, 0.0), (300, 36.0)])
    dwell = drive([(300, 36.0), (DWELL_S + 60, 0.0), (300, 36.0)])
    pairs = {}
    for name, (t, lat, lon) in {"short": short, "dwell": dwell}.items():
        sums, _ = fold(np.zeros(len(t), dtype=np.int64), t, lat, lon, {})
        pairs[name] = total(sums)
    assert pairs["short"][2] == 720.0  # every second of the drive, the stop's two minutes too
    assert pairs["dwell"][2] == 600.0  # the drive without the dwell
    assert pairs["short"][3][0] == 12 and pairs["dwell"][3][0] == 0  # the stop's pairs at 0-5 km/h
    assert pairs["dwell"][3][7] == 60  # 36 km/h: bucket 35-40


def test_a_fix_older_than_its_vehicles_folded_ones_is_left_out() -> None:
    t, lat, lon = drive([(600, 36.0)])
    _, tails = fold(np.zeros(30, dtype=np.int64), t[:30], lat[:30], lon[:30], {})
    late, _ = fold(np.zeros(3, dtype=np.int64), t[[10, 11, 30]], lat[[10, 11, 30]], lon[[10, 11, 30]], tails)
    assert total(late)[0] == 1  # only the fix after the tail pairs, with the tail


def insert(conn: psycopg.Connection, vehicle: str, t: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon) "
                        "VALUES ('truck', %s, to_timestamp(%s), %s, %s, %s)",
                        [(next(_seq), ts, vehicle, a, o) for ts, a, o in zip(t, lat, lon, strict=True)])
    conn.commit()


def profile(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT cell, hour_of_week, pairs, round(metres::numeric, 3), round(seconds::numeric, 3), "
                        "speed_counts FROM speed_profile ORDER BY 1, 2").fetchall()


def test_the_history_job_builds_the_profile_incrementally_as_fixes_arrive(db_url: str) -> None:
    t, lat, lon = drive([(900, 40.0), (120, 0.0), (900, 60.0)])
    with psycopg.connect(db_url) as conn:
        for a, b in ((0, 40), (40, 41), (41, len(t))):  # three passes of the job as fixes come in
            insert(conn, "TRK-042", t[a:b], lat[a:b], lon[a:b])
            assert history_job.refresh(conn).folded == b - a
        assert history_job.refresh(conn).folded == 0
        bit_by_bit = profile(conn)
        totals = conn.execute("SELECT pairs, seconds FROM speed_totals").fetchone()
        conn.execute("TRUNCATE speed_profile, speed_totals, speed_profile_tails, consumer_cursors")
        conn.commit()
        assert speed_profile.fold_pending(conn) == len(t)
        assert profile(conn) == bit_by_bit
    assert totals == (len(t) - 1, 1920.0)  # every pair, the two-minute stop included
    here = cell_of(31.2, 121.4 + 100 * EAST_M)
    assert (here, int(hours_of_week(t[0]))) in {(c, h) for c, h, *_ in bit_by_bit}


def test_a_large_backlog_is_read_in_block_ranges_with_the_same_result(db_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(db_url) as conn:
        for v in range(3):
            insert(conn, f"TRK-{v}", *drive([(600, 30.0 + 10 * v), (60, 0.0), (600, 50.0)]))
        speed_profile.fold_pending(conn)
        indexed = profile(conn)
        conn.execute("TRUNCATE speed_profile, speed_totals, speed_profile_tails, consumer_cursors")
        conn.commit()
        monkeypatch.setattr(speed_profile, "SMALL", 10)
        monkeypatch.setattr(speed_profile, "RANGE_PAGES", 2)
        assert speed_profile.fold_pending(conn) == 3 * 127
        assert profile(conn) == indexed


def test_an_arrived_shipment_becomes_a_past_trip_with_its_path(db_url: str) -> None:
    with world(db_url) as conn:
        demand_id, _ = upsert_demand(conn, "acme", "SO-1", demand())
        for uri in ITEMS:
            observe(conn, uri, "wh-sh1/door-03", "out", T0)
        conn.commit()
        process_pending(conn)
        steps = 60
        for i in range(steps + 1):  # a straight drive, a fix a minute, into the customer's geofence
            f = i / steps
            here = [w + f * (c - w) for w, c in zip(WAREHOUSE, CUSTOMER_SITE, strict=True)]
            conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                         "VALUES ('truck', %s, %s, 'TRK-042', %s, %s, 40)",
                         (next(_seq), T0 + timedelta(minutes=5 + i), *here))
            conn.commit()
            process_pending(conn)
        assert conn.execute("SELECT status FROM demands WHERE id = %s", (demand_id,)).fetchone()[0] == "arrived"
        done = history_job.refresh(conn)
        again = history_job.refresh(conn)
        lane, to_go, lat = conn.execute("SELECT lane, path_to_go_s, path_lat FROM past_trips").fetchone()
    assert (done.trips, done.built, again.trips, again.built) == (1, 1, 0, 0)
    assert lane == "wh-sh1 → acme-pd"
    assert to_go[0] > to_go[-1] == 0 and len(to_go) == len(lat) > 10


def test_the_etas_reads_of_the_profile_follow_each_fold(db_url: str) -> None:
    t, lat, lon = drive([(600, 40.0)])
    here = cell_of(float(lat[19]), float(lon[19] + lon[20]) / 2)  # the second fold's first pair is driven here
    hour = int(hours_of_week(t[19]))
    seen, stored = [], []
    with psycopg.connect(db_url) as conn:
        for a, b in ((0, 20), (20, len(t))):
            insert(conn, "TRK-042", t[a:b], lat[a:b], lon[a:b])
            speed_profile.fold_pending(conn)
            with conn.transaction():
                overview = eta_inputs.overview(conn)
                seen.append(eta_inputs.profile(conn, overview, [here], [hour]).rows[here, hour])
            stored.append(conn.execute("SELECT metres, seconds FROM speed_profile WHERE cell = %s "
                                       "AND hour_of_week = %s", (here, hour)).fetchone() or (0.0, 0.0))
    assert seen == stored and seen[0] != seen[1]
