"""Geofences: circles, and polygon outlines of real yards, concave ones and ones with holes included."""

from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from crm_link import master_data
from crm_link.correlate import process_pending
from crm_link.demands import upsert_demand
from crm_link.geo import Geofence, great_circle_m
from crm_link.master_records import Site
from tests.test_crm_status import ITEMS, T0, WAREHOUSE, demand, fix, observe, status, world

# A U-shaped yard 600 m wide: two arms and the street between them (the notch), which is not the yard.
U_YARD = {"type": "Polygon", "coordinates": [[
    [121.470, 31.230], [121.476, 31.230], [121.476, 31.236], [121.474, 31.236], [121.474, 31.232],
    [121.472, 31.232], [121.472, 31.236], [121.470, 31.236], [121.470, 31.230]]]}
AROUND = Geofence(31.233, 121.473, 500)  # the circle around it, as the site keeps it


def test_the_notch_of_a_concave_yard_is_outside_though_inside_its_circle() -> None:
    yard = Geofence(31.233, 121.473, 500, U_YARD)
    notch, arm, base = (31.235, 121.473), (31.235, 121.471), (31.231, 121.473)
    assert AROUND.contains(*notch) and not yard.contains(*notch)
    assert yard.contains(*arm) and yard.contains(*base)
    assert yard.contains(31.230, 121.473)  # on the fence itself
    assert not yard.contains(31.2295, 121.473)


def test_a_hole_in_the_outline_is_outside() -> None:
    outer = [[121.470, 31.230], [121.476, 31.230], [121.476, 31.236], [121.470, 31.236], [121.470, 31.230]]
    hole = [[121.472, 31.232], [121.474, 31.232], [121.474, 31.234], [121.472, 31.234], [121.472, 31.232]]
    yard = Geofence(31.233, 121.473, 500, {"type": "Polygon", "coordinates": [outer, hole]})
    assert not yard.contains(31.233, 121.473) and yard.contains(31.231, 121.471)


@given(st.floats(0, 360), st.floats(0, 0.99))
def test_a_point_well_within_a_circle_is_inside_and_one_beyond_it_outside(bearing: float, fraction: float) -> None:
    for metres, inside in ((300 * fraction, True), (300 * (1.01 + fraction), False)):
        d = metres / 111_195
        lat = 31.233 + d * math.cos(math.radians(bearing))
        lon = 121.473 + d * math.sin(math.radians(bearing)) / math.cos(math.radians(31.233))
        assert Geofence(31.233, 121.473, 300).contains(lat, lon) == inside, great_circle_m(31.233, 121.473, lat, lon)


def test_a_truck_in_the_notch_of_a_concave_site_has_not_arrived_and_inside_an_arm_it_has(db_url: str) -> None:
    """The destination's outline, not the circle around it, decides arrival (through the correlator on a
    real database, the site registered as master data)."""
    with world(db_url) as conn:
        master_data.put(conn, "sites", "acme-pd", Site.model_validate(
            {"name": "ACME Pudong DC", "geofence": U_YARD, "doors": ["door-01"]}))
        demand_id, _ = upsert_demand(conn, "acme", "SO-U1", demand())
        conn.commit()
        for uri in ITEMS:
            observe(conn, uri, "wh-sh1/door-03", "out", T0)
        fix(conn, *WAREHOUSE, T0 + timedelta(seconds=30))
        fix(conn, 31.26, 121.50, T0 + timedelta(minutes=10))
        process_pending(conn)
        assert status(conn, demand_id) == "in_transit"
        (radius,) = conn.execute("SELECT radius_m FROM sites WHERE id = 'acme-pd'").fetchone()
        assert radius > great_circle_m(31.233, 121.473, 31.235, 121.473)  # the notch is inside the circle
        fix(conn, 31.235, 121.473, T0 + timedelta(minutes=20))  # in the street between the arms
        process_pending(conn)
        assert status(conn, demand_id) == "in_transit"
        fix(conn, 31.235, 121.471, T0 + timedelta(minutes=21))  # inside the west arm
        process_pending(conn)
        assert status(conn, demand_id) == "arrived"
