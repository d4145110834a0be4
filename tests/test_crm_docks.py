"""Which vehicle is at a dock door: its own tag read there, else a dispatcher's dock assignment, else
its fixes inside the site — seen through misload detection for trucks that carry no tag."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest

from crm_link.correlate import process_pending
from crm_link.demands import upsert_demand
from crm_link.directory import upsert_vehicle
from tests.test_api_tenancy import as_api
from tests.test_crm_exceptions import DOOR, OUR_TRUCK_TAG, opened
from tests.test_crm_status import ITEMS, T0, WAREHOUSE, demand, observe, world

_seq = itertools.count(20_000)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with world(db_url) as conn:
        upsert_vehicle(conn, "TRK-007")  # no tag of its own
        conn.commit()
        yield conn


def assign(conn: psycopg.Connection, vehicle_id: str, valid_from: datetime, valid_to: datetime | None = None) -> None:
    conn.execute("INSERT INTO dock_assignments (site_id, door_id, vehicle_id, valid_from, valid_to, assigned_by) "
                 "VALUES ('wh-sh1', 'door-03', %s, %s, %s, 'dispatcher-1')", (vehicle_id, valid_from, valid_to))
    conn.commit()


def parked(conn: psycopg.Connection, vehicle_id: str, at: datetime) -> None:
    """A fix inside the warehouse's geofence, stationary."""
    conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                 "VALUES ('truck', %s, %s, %s, %s, %s, 0)", (next(_seq), at, vehicle_id, *WAREHOUSE))
    conn.commit()


def load(conn: psycopg.Connection, at: datetime) -> int:
    demand_id, _ = upsert_demand(conn, "acme", f"SO-{next(_seq)}", demand())  # planned on TRK-042
    observe(conn, ITEMS[0], DOOR, "out", at)
    process_pending(conn)
    return demand_id


def test_cargo_read_out_at_a_door_assigned_to_another_truck_is_a_misload(conn: psycopg.Connection) -> None:
    assign(conn, "TRK-042", T0 - timedelta(hours=3), T0 - timedelta(hours=1))  # earlier, over
    assign(conn, "TRK-007", T0 - timedelta(minutes=10))
    demand_id = load(conn, T0)
    assert opened(conn, "misload") == [(demand_id, "TRK-007", {
        "epc_uri": ITEMS[0], "read_point": DOOR, "planned_vehicle_id": "TRK-042", "vehicle_source": "dock_assignment"})]


def test_the_trucks_own_tag_at_the_door_outranks_the_assignment(conn: psycopg.Connection) -> None:
    upsert_vehicle(conn, "TRK-042", tag_epc_uri=OUR_TRUCK_TAG)
    assign(conn, "TRK-007", T0 - timedelta(minutes=10))  # out of date: the planned truck is there
    observe(conn, OUR_TRUCK_TAG, DOOR, None, T0 - timedelta(minutes=1))
    load(conn, T0)
    assert opened(conn, "misload") == []


def test_without_tag_or_assignment_the_one_truck_inside_the_site_is_at_the_door(conn: psycopg.Connection) -> None:
    parked(conn, "TRK-007", T0 - timedelta(minutes=2))
    demand_id = load(conn, T0)
    assert [(d, v, e["vehicle_source"]) for d, v, e in opened(conn, "misload")] == [(demand_id, "TRK-007", "geofence")]


def test_two_trucks_inside_the_site_and_nothing_else_accuse_no_one(conn: psycopg.Connection) -> None:
    parked(conn, "TRK-007", T0 - timedelta(minutes=2))
    parked(conn, "TRK-042", T0 - timedelta(minutes=1))
    load(conn, T0)
    assert opened(conn, "misload") == []


def test_the_planned_truck_assigned_to_the_door_is_no_misload(conn: psycopg.Connection) -> None:
    assign(conn, "TRK-042", T0 - timedelta(minutes=10))
    parked(conn, "TRK-007", T0 - timedelta(minutes=2))  # in the yard, but the assignment is trusted more
    load(conn, T0)
    assert opened(conn, "misload") == []


def test_dock_assignments_are_for_staff_only(conn: psycopg.Connection) -> None:
    assign(conn, "TRK-007", T0)
    counts = {}
    for role in ("customer", "dispatcher"):
        with conn.transaction(force_rollback=True):
            as_api(conn, role, "acme")
            counts[role] = conn.execute("SELECT count(*) FROM dock_assignments").fetchone()[0]
    assert counts == {"customer": 0, "dispatcher": 1}
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        as_api(conn, "customer", "acme")
        assign(conn, "TRK-042", T0)
