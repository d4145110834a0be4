"""Route exceptions the correlator opens: cargo left behind, cargo on the wrong truck — each once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from crm_link.correlate import process_pending
from crm_link.demands import upsert_demand
from crm_link.directory import upsert_vehicle
from tests.test_crm_status import ITEMS, T0, demand, fix, observe, status, world

OTHER_TRUCK_TAG = "urn:epc:id:giai:0614141.7007"
OUR_TRUCK_TAG = "urn:epc:id:giai:0614141.7042"
DOOR = "wh-sh1/door-03"


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with world(db_url) as conn:
        yield conn


def opened(conn: psycopg.Connection, kind: str) -> list[tuple]:
    return conn.execute("SELECT demand_id, vehicle_id, evidence FROM exceptions WHERE type = %s ORDER BY id",
                        (kind,)).fetchall()


def test_truck_leaves_with_one_pallet_missing_opens_missing_cargo_once(conn: psycopg.Connection) -> None:
    demand_id, _ = upsert_demand(conn, "acme", "SO-2001", demand())
    observe(conn, ITEMS[0], DOOR, "out", T0)
    fix(conn, 31.26, 121.50, T0 + timedelta(minutes=5))  # gone, with ITEMS[1] still on the dock
    fix(conn, 31.27, 121.51, T0 + timedelta(minutes=6))
    process_pending(conn)
    assert status(conn, demand_id) == "in_transit"
    assert opened(conn, "missing_cargo") == [(demand_id, "TRK-042", {"missing": [ITEMS[1]]})]
    process_pending(conn)
    assert len(opened(conn, "missing_cargo")) == 1


def test_a_pallet_read_before_departure_but_applied_after_it_closes_missing_cargo(conn: psycopg.Connection) -> None:
    """Its read committed late (a gateway's outbox after an outage), or applied by another correlator
    than the truck's fixes: the pallet left with the truck after all. A read after departure does not."""
    third = "urn:epc:id:sgtin:0614141.812345.3"
    demand_id, _ = upsert_demand(conn, "acme", "SO-2006", demand(items=[{"epc_uri": u} for u in [*ITEMS, third]]))
    observe(conn, ITEMS[0], DOOR, "out", T0)
    fix(conn, 31.26, 121.50, T0 + timedelta(minutes=5))
    process_pending(conn)
    assert opened(conn, "missing_cargo")[0][2] == {"missing": sorted([third, ITEMS[1]])}
    observe(conn, ITEMS[1], DOOR, "out", T0 + timedelta(minutes=1))  # before the departure
    observe(conn, third, DOOR, "out", T0 + timedelta(minutes=9))  # after it: still on the dock
    process_pending(conn)
    loaded = dict(conn.execute("SELECT epc_uri, loaded_at FROM demand_items WHERE demand_id = %s", (demand_id,)))
    assert loaded == {ITEMS[0]: T0, ITEMS[1]: T0 + timedelta(minutes=1), third: None}
    assert conn.execute("SELECT state FROM exceptions WHERE type = 'missing_cargo'").fetchall() == [("open",)]
    observe(conn, third, DOOR, "out", T0 + timedelta(minutes=4))  # its read before departure, at last
    process_pending(conn)
    assert conn.execute("SELECT state, resolved_at, note FROM exceptions WHERE type = 'missing_cargo'").fetchall() == [
        ("resolved", T0 + timedelta(minutes=5), "read out before departure")]
    assert status(conn, demand_id) == "in_transit"  # never back


def test_a_full_load_opens_no_missing_cargo(conn: psycopg.Connection) -> None:
    upsert_demand(conn, "acme", "SO-2002", demand())
    for uri in ITEMS:
        observe(conn, uri, DOOR, "out", T0)
    fix(conn, 31.26, 121.50, T0 + timedelta(minutes=5))
    process_pending(conn)
    assert opened(conn, "missing_cargo") == []


def test_cargo_read_out_beside_another_truck_is_a_misload_whichever_read_commits_first(
        conn: psycopg.Connection) -> None:
    upsert_vehicle(conn, "TRK-007", tag_epc_uri=OTHER_TRUCK_TAG)
    first, _ = upsert_demand(conn, "acme", "SO-2003", demand())
    second, _ = upsert_demand(conn, "acme", "SO-2004", demand(items=[{"epc_uri": "urn:epc:id:sgtin:0614141.812345.9"}]))
    observe(conn, OTHER_TRUCK_TAG, DOOR, None, T0)  # the truck's tag, then the cargo: truck is found
    observe(conn, ITEMS[0], DOOR, "out", T0 + timedelta(minutes=2))
    process_pending(conn)
    later = T0 + timedelta(hours=2)
    observe(conn, "urn:epc:id:sgtin:0614141.812345.9", DOOR, "out", later)
    process_pending(conn)  # no truck at the door yet: nothing to say
    assert len(opened(conn, "misload")) == 1
    observe(conn, OTHER_TRUCK_TAG, DOOR, None, later + timedelta(minutes=1))  # the truck read comes after
    observe(conn, OTHER_TRUCK_TAG, DOOR, None, later + timedelta(minutes=2))
    process_pending(conn)
    found = {(d, v): e for d, v, e in opened(conn, "misload")}
    assert found == {(first, "TRK-007"): {"epc_uri": ITEMS[0], "read_point": DOOR, "planned_vehicle_id": "TRK-042"},
                     (second, "TRK-007"): {"epc_uri": "urn:epc:id:sgtin:0614141.812345.9", "read_point": DOOR,
                                           "planned_vehicle_id": "TRK-042"}}


def test_the_planned_truck_or_a_truck_long_gone_is_no_misload(conn: psycopg.Connection) -> None:
    upsert_vehicle(conn, "TRK-042", tag_epc_uri=OUR_TRUCK_TAG)
    upsert_vehicle(conn, "TRK-007", tag_epc_uri=OTHER_TRUCK_TAG)
    upsert_demand(conn, "acme", "SO-2005", demand())
    observe(conn, OTHER_TRUCK_TAG, DOOR, None, T0 - timedelta(hours=3))
    observe(conn, OUR_TRUCK_TAG, DOOR, None, T0)
    observe(conn, ITEMS[0], DOOR, "out", T0 + timedelta(minutes=1))
    observe(conn, ITEMS[1], DOOR, "in", T0 + timedelta(minutes=1))  # unloaded back in: not a load
    process_pending(conn)
    assert opened(conn, "misload") == []
