"""ETA of a shipment in transit: recomputed on every fix through the real correlator, along the planned
route or great-circle, at a bounded average speed, with a history of its moves; and its error on
simulated trips (bench.eta) through the same path."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest

from bench import eta as bench_eta
from crm_link.demands import upsert_demand
from crm_link.directory import upsert_customer
from crm_link.geo import great_circle_m
from tests.test_api_tenancy import as_api
from tests.test_crm_route_exceptions import along, fix, in_transit
from tests.test_crm_status import CUSTOMER_SITE, ITEMS, T0, demand, observe, world


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with world(db_url) as conn:
        yield conn


def stored_eta(conn: psycopg.Connection, demand_id: int) -> tuple[datetime, datetime]:
    return conn.execute("SELECT eta, eta_computed_at FROM demands WHERE id = %s", (demand_id,)).fetchone()


def history(conn: psycopg.Connection, demand_id: int) -> list[tuple[datetime, datetime]]:
    return conn.execute("SELECT computed_at, eta FROM eta_history WHERE demand_id = %s ORDER BY computed_at",
                        (demand_id,)).fetchall()


def test_without_a_planned_route_the_eta_is_great_circle_at_the_fix_speed(conn: psycopg.Connection) -> None:
    demand_id, _ = upsert_demand(conn, "acme", "SO-3001", demand())  # no planned route
    for uri in ITEMS:
        observe(conn, uri, "wh-sh1/door-03", "out", T0)
    here = along(0.5)
    fix(conn, here, T0 + timedelta(minutes=10), speed_kmh=60)
    eta, computed = stored_eta(conn, demand_id)
    expected = computed + timedelta(seconds=great_circle_m(*here, *CUSTOMER_SITE) / (60 / 3.6))
    assert computed == T0 + timedelta(minutes=10) and abs(eta - expected) < timedelta(seconds=1)


@pytest.mark.parametrize(("speed_kmh", "assumed_kmh"), [(200.0, 90.0), (0.0, 15.0)])
def test_the_assumed_speed_is_bounded(conn: psycopg.Connection, speed_kmh: float, assumed_kmh: float) -> None:
    demand_id = in_transit(conn)  # its first fix, at 40 km/h, set the average; replace it with one reading
    conn.execute("DELETE FROM route_watch WHERE demand_id = %s", (demand_id,))
    fix(conn, along(0.5), T0 + timedelta(minutes=10), speed_kmh=speed_kmh)
    eta, computed = stored_eta(conn, demand_id)
    remaining = eta - computed
    to_go = great_circle_m(*along(0.5), *CUSTOMER_SITE)  # the route is the straight line here
    assert abs(remaining.total_seconds() - to_go / (assumed_kmh / 3.6)) < 2


def test_every_fix_recomputes_the_eta_and_only_its_moves_are_history(conn: psycopg.Connection) -> None:
    demand_id = in_transit(conn, delivery_to=(T0 + timedelta(hours=2)).isoformat())
    for minute in range(6, 12):  # steady progress at the speed reported: the ETA stays put
        fix(conn, along(0.1 + 0.06 * (minute - 5)), T0 + timedelta(minutes=minute), speed_kmh=43)
    assert stored_eta(conn, demand_id)[1] == T0 + timedelta(minutes=11)
    steady = history(conn, demand_id)
    assert steady[0][0] == T0 + timedelta(minutes=5) and len(steady) <= 2
    for minute in range(12, 16):  # stuck behind a tractor: the ETA slips minute by minute
        fix(conn, along(0.46 + 0.01 * (minute - 11)), T0 + timedelta(minutes=minute), speed_kmh=15)
    slipped = history(conn, demand_id)
    assert len(slipped) > len(steady) and slipped[-1][1] - steady[-1][1] > timedelta(minutes=1)


def test_on_a_simulated_trip_the_eta_converges_on_the_real_arrival(db_url: str) -> None:
    trip = bench_eta.trips()[1]  # 29 km at a steady 50 km/h
    result = bench_eta.run(db_url, trip, period_s=30)
    assert 30 < result["trip_min"] < 40 and result["late_opened_min_before_breach"] is None
    assert [b["to_go_min"] for b in result["bands"]] == ["30-", "10-30", "0-10"]
    assert all(b["max_abs_err_min"] < 1 for b in result["bands"])


def test_a_jam_is_flagged_late_well_before_the_window_is_breached(db_url: str) -> None:
    trip = bench_eta.trips()[3]
    result = bench_eta.run(db_url, trip, period_s=30)
    assert result["late_opened_min_before_breach"] >= 30


def test_with_the_lanes_history_a_jam_is_flagged_late_half_an_hour_before_the_breach(db_url: str) -> None:
    result = bench_eta.run(db_url, bench_eta.trips()[3], period_s=30, history=8)  # the lane usually at 50 km/h
    assert "blend" in result["methods"] and "speed" not in result["methods"]
    assert result["late_opened_min_before_breach"] >= 30
    assert result["band_holds"] >= 0.6  # from the jam on, the band spans it lasting to the end (a quarter is before)


def test_with_the_lanes_history_the_steady_trip_is_never_late_and_its_band_holds_the_arrival(db_url: str) -> None:
    trip = bench_eta.trips()[1]  # its window, with grace, ends 7.7 minutes after it arrives
    result = bench_eta.run(db_url, trip, period_s=30, history=8)
    assert result["methods"] == ["blend"] and result["late_opened_min_before_breach"] is None
    assert all(abs(e) < 1.5 for e in result["error_min_at"].values())
    assert result["band_holds"] >= 0.75


def test_without_history_the_eta_is_todays_with_a_band_around_it(conn: psycopg.Connection) -> None:
    demand_id = in_transit(conn)
    fix(conn, along(0.5), T0 + timedelta(minutes=10), speed_kmh=40)
    eta, computed, p10, p90, method = conn.execute(
        "SELECT eta, eta_computed_at, eta_p10, eta_p90, eta_method FROM demands WHERE id = %s", (demand_id,)).fetchone()
    stored = conn.execute("SELECT eta_p10, eta_p90, method FROM eta_history WHERE demand_id = %s ORDER BY computed_at "
                          "DESC LIMIT 1", (demand_id,)).fetchone()
    assert method == "speed" and stored == (p10, p90, "speed")
    assert computed < p10 < eta < p90 and (p90 - computed) > (eta - computed) * 1.2


def test_a_customer_sees_only_its_own_eta_history(conn: psycopg.Connection) -> None:
    upsert_customer(conn, "globex", "Globex")
    demand_id = in_transit(conn)
    conn.commit()
    seen = {}
    for customer in ("acme", "globex"):
        with conn.transaction(force_rollback=True):
            as_api(conn, "customer", customer)
            seen[customer] = conn.execute("SELECT count(*) FROM eta_history WHERE demand_id = %s",
                                          (demand_id,)).fetchone()[0]
    assert seen == {"acme": 1, "globex": 0}
