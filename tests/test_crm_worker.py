"""The correlator service wakes on ingest's NOTIFY and announces every status change; identifier
mapping and geofences hold for any input."""

from __future__ import annotations

import math
import threading

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import epc
from common.settings import Settings
from crm_link import worker
from crm_link.demands import upsert_demand
from crm_link.geo import EARTH_RADIUS_M, Geofence
from crm_link.identifiers import gs1_check_digit, gtin_serial_to_uri, sscc_to_uri
from tests.test_crm_status import ITEMS, T0, demand, observe, status, world


def test_the_worker_wakes_on_ingest_notify_and_announces_the_status_change(db_url: str) -> None:
    with world(db_url) as conn, psycopg.connect(db_url, autocommit=True) as listener:
        demand_id, _ = upsert_demand(conn, "acme", "SO-3001", demand())
        listener.execute("LISTEN cargotrace_status")
        stop = threading.Event()
        # A poll period far beyond the test's patience: only the NOTIFY can wake the worker in time.
        service = threading.Thread(target=worker.run, args=(Settings(database_url=db_url, crm_poll_seconds=3600),
                                                            stop))
        service.start()
        try:
            observe(conn, ITEMS[0], "wh-sh1/door-03", "out", T0)
            conn.execute("NOTIFY cargotrace_events")
            conn.commit()
            announced = next(listener.notifies(timeout=20), None)
        finally:
            stop.set()
            service.join(timeout=30)
        assert announced is not None and announced.payload == str(demand_id)
        assert status(conn, demand_id) == "loading"
        assert not service.is_alive()


@given(body=st.text("0123456789", min_size=17, max_size=17), prefix=st.integers(6, 12))
def test_every_valid_sscc_maps_to_a_uri_that_encodes_to_a_tag_and_back(body: str, prefix: int) -> None:
    sscc = body + str(gs1_check_digit(body))
    uri = sscc_to_uri(sscc, prefix)
    assert uri == f"urn:epc:id:sscc:{sscc[1:1 + prefix]}.{sscc[0]}{sscc[1 + prefix:17]}"
    assert epc.decode(epc.encode(uri)).uri == uri


@given(body=st.text("0123456789", min_size=13, max_size=13), prefix=st.integers(6, 12),
       serial=st.integers(0, 2**38 - 1))
def test_every_valid_gtin_with_serial_maps_to_an_encodable_sgtin(body: str, prefix: int, serial: int) -> None:
    gtin = body + str(gs1_check_digit(body))
    uri = gtin_serial_to_uri(gtin, str(serial), prefix)
    assert uri.startswith(f"urn:epc:id:sgtin:{gtin[1:1 + prefix]}.") and uri.endswith(f".{serial}")
    assert epc.decode(epc.encode(uri)).uri == uri


@given(body=st.text("0123456789", min_size=17, max_size=17), wrong=st.integers(1, 9))
def test_a_wrong_check_digit_is_refused(body: str, wrong: int) -> None:
    with pytest.raises(ValueError, match="check digit"):
        sscc_to_uri(body + str((gs1_check_digit(body) + wrong) % 10), 7)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance: an independent measure to hold the projected geofence against."""
    p1, p2, dlon = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


@given(lat=st.floats(-70, 70), lon=st.floats(-179, 179), radius=st.floats(50, 5000),
       dlat=st.floats(-0.1, 0.1), dlon=st.floats(-0.1, 0.1))
def test_a_geofence_contains_a_point_exactly_when_it_is_within_the_radius(
        lat: float, lon: float, radius: float, dlat: float, dlon: float) -> None:
    distance = haversine_m(lat, lon, lat + dlat, lon + dlon)
    inside = Geofence(lat, lon, radius).contains(lat + dlat, lon + dlon)
    # 1 % slack: the projection is local.
    if distance < 0.99 * radius:
        assert inside
    elif distance > 1.01 * radius:
        assert not inside
