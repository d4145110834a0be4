"""A demand record moves pending → delivered from observations and fixes, as ingest writes them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from crm_link.correlate import process_pending
from crm_link.demands import DemandRecord, upsert_demand
from crm_link.directory import upsert_customer, upsert_site, upsert_vehicle

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
WAREHOUSE = (31.2304, 121.4737)
CUSTOMER_SITE = (31.3000, 121.5500)
ITEMS = ["urn:epc:id:sgtin:0614141.812345.1", "urn:epc:id:sgtin:0614141.812345.2"]
_seq = itertools.count(1)


@contextmanager
def world(db_url: str) -> Iterator[psycopg.Connection]:
    """A connection to a database with a customer, a warehouse, the customer's DC and a truck."""
    with psycopg.connect(db_url) as conn:
        upsert_customer(conn, "acme", "ACME Trading")
        upsert_site(conn, "wh-sh1", "Warehouse Shanghai 1", *WAREHOUSE, 300, doors=["door-03", "door-04"])
        upsert_site(conn, "acme-pd", "ACME Pudong DC", *CUSTOMER_SITE, 250, doors=["door-01"])
        upsert_vehicle(conn, "TRK-042")
        conn.commit()
        yield conn


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with world(db_url) as conn:
        yield conn


def demand(**over: object) -> DemandRecord:
    return DemandRecord.model_validate({"origin_site_id": "wh-sh1", "destination": {"site_id": "acme-pd"},
                                        "vehicle_id": "TRK-042", "items": [{"epc_uri": u} for u in ITEMS], **over})


def observe(conn: psycopg.Connection, epc_uri: str, read_point: str, direction: str | None, at: datetime) -> None:
    conn.execute("INSERT INTO tag_observations (gateway_id, seq, ts, epc, epc_uri, read_point, reader, antenna, "
                 "rssi_dbm, reads, first_seen, direction) VALUES ('gw', %s, %s, 'AA', %s, %s, 'r', 1, -50, 5, %s, %s)",
                 (next(_seq), at, epc_uri, read_point, at, direction))
    conn.commit()


def fix(conn: psycopg.Connection, lat: float, lon: float, at: datetime) -> None:
    conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                 "VALUES ('truck', %s, %s, 'TRK-042', %s, %s, 40)", (next(_seq), at, lat, lon))
    conn.commit()


def status(conn: psycopg.Connection, demand_id: int) -> str:
    return conn.execute("SELECT status FROM demands WHERE id = %s", (demand_id,)).fetchone()[0]


def test_a_shipment_walks_from_pending_to_delivered(conn: psycopg.Connection) -> None:
    demand_id, created = upsert_demand(conn, "acme", "SO-1001", demand())
    assert created and status(conn, demand_id) == "pending"
    observe(conn, ITEMS[0], "wh-sh1/door-03", "out", T0)
    process_pending(conn)
    assert status(conn, demand_id) == "loading"
    observe(conn, ITEMS[1], "wh-sh1/door-03", "out", T0 + timedelta(seconds=5))
    fix(conn, *WAREHOUSE, T0 + timedelta(seconds=30))  # still in the yard
    process_pending(conn)
    assert status(conn, demand_id) == "loaded"
    fix(conn, 31.26, 121.50, T0 + timedelta(minutes=10))
    process_pending(conn)
    assert status(conn, demand_id) == "in_transit"
    fix(conn, CUSTOMER_SITE[0] + 0.001, CUSTOMER_SITE[1], T0 + timedelta(minutes=30))  # ~110 m from the gate
    observe(conn, ITEMS[0], "acme-pd/door-01", "in", T0 + timedelta(minutes=35))
    process_pending(conn)
    assert status(conn, demand_id) == "arrived"  # one of two items received
    observe(conn, ITEMS[1], "acme-pd/door-01", None, T0 + timedelta(minutes=36))
    process_pending(conn)
    timeline = conn.execute("SELECT status, biz_step, place FROM shipment_events WHERE demand_id = %s ORDER BY ts",
                            (demand_id,)).fetchall()
    assert timeline == [("loading", "loading", "wh-sh1/door-03"), ("loaded", "loading", "wh-sh1/door-03"),
                        ("in_transit", "departing", None), ("arrived", "arriving", "acme-pd"),
                        ("delivered", "receiving", "acme-pd/door-01")]


def test_restarting_the_correlator_neither_repeats_nor_skips(conn: psycopg.Connection, db_url: str) -> None:
    demand_id, _ = upsert_demand(conn, "acme", "SO-1002", demand())
    observe(conn, ITEMS[0], "wh-sh1/door-03", "out", T0)
    assert process_pending(conn) == 1
    with psycopg.connect(db_url) as other:  # a new process after a restart
        assert process_pending(other) == 0
        observe(conn, ITEMS[1], "wh-sh1/door-03", "out", T0 + timedelta(seconds=1))
        assert process_pending(other) == 1
    assert status(conn, demand_id) == "loaded"
    assert conn.execute("SELECT count(*) FROM shipment_events WHERE demand_id = %s", (demand_id,)).fetchone()[0] == 2


def test_reads_at_the_wrong_place_or_direction_do_not_move_the_status(conn: psycopg.Connection) -> None:
    demand_id, _ = upsert_demand(conn, "acme", "SO-1003", demand())
    observe(conn, ITEMS[0], "wh-sh1/door-03", "in", T0)  # coming back in, not loading out
    observe(conn, ITEMS[0], "acme-pd/door-01", "in", T0)  # at the destination before it ever left
    fix(conn, 31.26, 121.50, T0)  # the truck drives off, but nothing was loaded
    process_pending(conn)
    assert status(conn, demand_id) == "pending"


def test_upsert_is_idempotent_and_keeps_the_history_of_changes(conn: psycopg.Connection) -> None:
    first = upsert_demand(conn, "acme", "SO-1004", demand())
    again = upsert_demand(conn, "acme", "SO-1004", demand())
    assert first == (again[0], True) and again[1] is False
    assert conn.execute("SELECT count(*) FROM demand_history").fetchone()[0] == 0
    upsert_demand(conn, "acme", "SO-1004", demand(rush=True, delivery_to="2026-11-03T18:00:00Z"))
    (changes,) = conn.execute("SELECT changes FROM demand_history").fetchone()
    assert changes["rush"] == {"from": False, "to": True}
    assert changes["delivery_to"]["from"] is None


def test_sscc_and_gtin_items_map_to_the_uris_tags_carry() -> None:
    record = demand(items=[{"sscc": "106141411234567897", "company_prefix_length": 7},
                           {"gtin": "80614141123458", "serial": "6789", "company_prefix_length": 7}])
    assert [i.uri for i in record.items] == ["urn:epc:id:sscc:0614141.1123456789",
                                             "urn:epc:id:sgtin:0614141.812345.6789"]


def test_customer_sub_tags_are_one_to_one_with_statuses_and_agree_with_the_words() -> None:
    from crm_link.status import CUSTOMER_SUBTAG, CUSTOMER_WORD, STATUSES
    assert sorted(CUSTOMER_SUBTAG) == sorted(STATUSES) == sorted(CUSTOMER_WORD)
    assert len(set(CUSTOMER_SUBTAG.values())) == len(STATUSES)
    assert all(CUSTOMER_SUBTAG[s].rsplit("_", 1)[0] == CUSTOMER_WORD[s] for s in STATUSES)
