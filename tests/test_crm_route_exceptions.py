"""Route exceptions of a shipment in transit, one readable scenario each, driven by real fixes and reads
through the database and the real correlator (and the silence sweep), plus the clean trip."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_link.correlate import process_pending
from crm_link.demands import upsert_demand
from crm_link.directory import upsert_site
from crm_link.geo import great_circle_m, off_route_m, remaining_m
from crm_link.route_watch import sweep_gps_silence
from crm_link.thresholds import Thresholds
from tests.test_crm_status import CUSTOMER_SITE, ITEMS, T0, WAREHOUSE, demand, observe, status, world

ROUTE = {"type": "LineString", "coordinates": [[WAREHOUSE[1], WAREHOUSE[0]], [CUSTOMER_SITE[1], CUSTOMER_SITE[0]]]}
_seq = itertools.count(10_000)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with world(db_url) as conn:
        yield conn


def along(fraction: float, sideways_deg: float = 0.0) -> tuple[float, float]:
    """A point `fraction` of the way from the warehouse to the customer, optionally pushed sideways."""
    return (WAREHOUSE[0] + fraction * (CUSTOMER_SITE[0] - WAREHOUSE[0]) - sideways_deg,
            WAREHOUSE[1] + fraction * (CUSTOMER_SITE[1] - WAREHOUSE[1]) + sideways_deg)


def fix(conn: psycopg.Connection, point: tuple[float, float], at: datetime, speed_kmh: float = 40.0) -> None:
    conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                 "VALUES ('truck', %s, %s, 'TRK-042', %s, %s, %s)", (next(_seq), at, *point, speed_kmh))
    conn.commit()
    process_pending(conn)


def in_transit(conn: psycopg.Connection, **over: object) -> int:
    """A loaded shipment on the planned route that has just left the warehouse (at T0 + 5 min)."""
    demand_id, _ = upsert_demand(conn, "acme", f"SO-{next(_seq)}", demand(planned_route=ROUTE, **over))
    for uri in ITEMS:
        observe(conn, uri, "wh-sh1/door-03", "out", T0)
    fix(conn, along(0.1), T0 + timedelta(minutes=5))
    assert status(conn, demand_id) == "in_transit"
    return demand_id


def exceptions_of(conn: psycopg.Connection, demand_id: int) -> list[tuple[str, str]]:
    return conn.execute("SELECT type, state FROM exceptions WHERE demand_id = %s ORDER BY id", (demand_id,)).fetchall()


def evidence(conn: psycopg.Connection, demand_id: int, kind: str) -> dict:
    return conn.execute("SELECT evidence FROM exceptions WHERE demand_id = %s AND type = %s",
                        (demand_id, kind)).fetchone()[0]


def test_a_clean_trip_raises_nothing_and_keeps_an_eta(conn: psycopg.Connection) -> None:
    demand_id = in_transit(conn, delivery_to=(T0 + timedelta(hours=2)).isoformat())
    for minute in range(6, 19):
        fix(conn, along(0.1 + 0.06 * (minute - 5)), T0 + timedelta(minutes=minute), speed_kmh=45)
    eta, computed = conn.execute("SELECT eta, eta_computed_at FROM demands WHERE id = %s", (demand_id,)).fetchone()
    assert computed == T0 + timedelta(minutes=18)
    assert computed + timedelta(minutes=1) < eta < computed + timedelta(minutes=3)
    fix(conn, CUSTOMER_SITE, T0 + timedelta(minutes=22), speed_kmh=0)
    assert status(conn, demand_id) == "arrived"
    assert exceptions_of(conn, demand_id) == []


def test_leaving_the_corridor_long_enough_is_off_route_once_until_back(conn: psycopg.Connection) -> None:
    demand_id = in_transit(conn)
    fix(conn, along(0.3, sideways_deg=0.01), T0 + timedelta(minutes=8))  # ~1.4 km off: not yet long enough
    assert exceptions_of(conn, demand_id) == []
    for minute in (9, 10, 11):
        fix(conn, along(0.35, sideways_deg=0.01), T0 + timedelta(minutes=minute))
    assert exceptions_of(conn, demand_id) == [("off_route", "open")]
    assert 1200 < evidence(conn, demand_id, "off_route")["distance_m"] < 1700
    fix(conn, along(0.4), T0 + timedelta(minutes=12))
    assert exceptions_of(conn, demand_id) == [("off_route", "resolved")]


def test_a_customer_override_widens_the_corridor(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE customers SET exception_thresholds = '{\"corridor_m\": 2000}' WHERE id = 'acme'")
    demand_id = in_transit(conn)
    for minute in (8, 9, 10, 11):
        fix(conn, along(0.35, sideways_deg=0.01), T0 + timedelta(minutes=minute))
    assert exceptions_of(conn, demand_id) == []


def test_standing_still_away_from_the_sites_is_an_unplanned_stop(conn: psycopg.Connection) -> None:
    demand_id = in_transit(conn)
    for minute in range(8, 14):  # five minutes parked mid-route
        fix(conn, along(0.5), T0 + timedelta(minutes=minute), speed_kmh=0)
    assert exceptions_of(conn, demand_id) == [("unplanned_stop", "open")]
    assert evidence(conn, demand_id, "unplanned_stop").keys() == {"since", "lat", "lon", "position_id"}
    assert evidence(conn, demand_id, "unplanned_stop")["since"].startswith("2026-11-02 08:08")
    fix(conn, along(0.55), T0 + timedelta(minutes=15), speed_kmh=50)
    assert exceptions_of(conn, demand_id) == [("unplanned_stop", "resolved")]


def test_an_eta_past_the_window_is_late_until_it_comes_back(conn: psycopg.Connection) -> None:
    demand_id = in_transit(conn, delivery_to=(T0 + timedelta(minutes=5)).isoformat())
    fix(conn, along(0.15), T0 + timedelta(minutes=6), speed_kmh=10)  # crawling: ETA past 08:05 + 15 min grace
    assert exceptions_of(conn, demand_id) == [("late", "open")]
    for minute, fraction in ((7, 0.5), (8, 0.8), (9, 0.9)):
        fix(conn, along(fraction), T0 + timedelta(minutes=minute), speed_kmh=90)
    assert exceptions_of(conn, demand_id) == [("late", "resolved")]


def test_no_fix_for_too_long_is_gps_silence_until_fixes_return(conn: psycopg.Connection) -> None:
    demand_id = in_transit(conn)
    last = T0 + timedelta(minutes=5)
    assert sweep_gps_silence(conn, Thresholds(), last + timedelta(minutes=9)) == 0
    assert sweep_gps_silence(conn, Thresholds(), last + timedelta(minutes=11)) == 1
    assert sweep_gps_silence(conn, Thresholds(), last + timedelta(minutes=12)) == 0  # one incident, one exception
    assert evidence(conn, demand_id, "gps_silence")["silent_s"] == 660
    fix(conn, along(0.3), last + timedelta(minutes=13))
    assert exceptions_of(conn, demand_id) == [("gps_silence", "resolved")]


def test_cargo_received_at_another_site_is_a_wrong_destination(conn: psycopg.Connection) -> None:
    upsert_site(conn, "globex-dc", "Someone else's DC", 31.35, 121.60, doors=["door-02"])
    demand_id = in_transit(conn)
    observe(conn, ITEMS[0], "globex-dc/door-02", "in", T0 + timedelta(minutes=30))
    process_pending(conn)
    assert exceptions_of(conn, demand_id) == [("wrong_destination", "open")]
    assert evidence(conn, demand_id, "wrong_destination")["read_point"] == "globex-dc/door-02"



def test_a_long_stop_inside_another_site_is_a_wrong_destination(conn: psycopg.Connection) -> None:
    stop = along(0.5)
    upsert_site(conn, "globex-dc", "Someone else's DC", *stop, 200, doors=["door-02"])
    demand_id = in_transit(conn)
    for minute in range(8, 14):
        fix(conn, stop, T0 + timedelta(minutes=minute), speed_kmh=0)
    assert exceptions_of(conn, demand_id) == [("wrong_destination", "open")]
    assert evidence(conn, demand_id, "wrong_destination")["site"] == "globex-dc"


coordinates = st.tuples(st.floats(-60, 60), st.floats(-170, 170))


@given(start=coordinates, end=coordinates)
def test_distances_to_a_route_are_never_negative_and_zero_on_it(start: tuple[float, float],
                                                               end: tuple[float, float]) -> None:
    if great_circle_m(*start, *end) < 1:
        return
    route = {"type": "LineString", "coordinates": [[start[1], start[0]], [end[1], end[0]]]}
    assert off_route_m(route, *start) < 1e-6 and off_route_m(route, *end) < 1e-3 * great_circle_m(*start, *end) + 1
    assert abs(remaining_m(route, *end, *end)) < 1e-3 * great_circle_m(*start, *end) + 1
    assert remaining_m(route, *start, *end) >= remaining_m(route, *end, *end) >= 0


def test_a_terminals_emergency_alarm_in_transit_opens_an_emergency_for_the_dispatcher(
        conn: psycopg.Connection) -> None:
    demand_id = in_transit(conn)
    conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh, alarms) "
                 "VALUES ('truck', %s, %s, 'TRK-042', %s, %s, 0, '{emergency,overspeed}')",
                 (next(_seq), T0 + timedelta(minutes=6), *along(0.2)))
    conn.commit()
    process_pending(conn)
    assert exceptions_of(conn, demand_id) == [("emergency", "open")]
    assert evidence(conn, demand_id, "emergency")["alarms"] == ["emergency", "overspeed"]
    fix(conn, along(0.25), T0 + timedelta(minutes=7))  # the next fix without it: a dispatcher resolves it
    assert exceptions_of(conn, demand_id) == [("emergency", "open")]
