"""Customer KPIs, ABC classes, satisfaction and churn on hand-built shipments in the real database."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from common.settings import Settings
from crm_link import kpis
from crm_link.directory import upsert_customer, upsert_site
from tests.api_world import World
from tracking_api.app import create_app

DAY = datetime(2026, 11, 3, tzinfo=UTC)
START, END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def shipment(conn: psycopg.Connection, customer: str, ref: str, events: dict[str, float], items: tuple[int, int],
             rush: bool = False) -> int:
    """A demand created on DAY with pickup by 10:00 and delivery by 14:00, its status events at the given
    hours, and `items` = (delivered, total)."""
    last = max(events, key=events.get) if events else "pending"
    demand_id = conn.execute(
        "INSERT INTO demands (customer_id, external_ref, origin_site_id, destination_site_id, pickup_to, delivery_to, "
        "rush, status, created_at) VALUES (%s, %s, 'wh', 'dc', %s, %s, %s, %s, %s) RETURNING id",
        (customer, ref, at(10), at(14), rush, last, DAY)).fetchone()[0]
    for status, hour in events.items():
        conn.execute("INSERT INTO shipment_events (demand_id, status, ts) VALUES (%s, %s, %s)",
                     (demand_id, status, at(hour)))
    delivered, total = items
    for n in range(total):
        conn.execute("INSERT INTO demand_items (demand_id, epc_uri, delivered_at) VALUES (%s, %s, %s)",
                     (demand_id, f"urn:epc:id:sgtin:0614141.812345.{demand_id * 10 + n}",
                      at(13) if n < delivered else None))
    return demand_id


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as conn:
        for customer in ("acme", "globex"):
            upsert_customer(conn, customer, customer.title())
        upsert_site(conn, "wh", "Warehouse", 31.2, 121.4)
        upsert_site(conn, "dc", "DC", 31.3, 121.5)
        shipment(conn, "acme", "S1", {"loading": 9, "in_transit": 9.5, "arrived": 13, "delivered": 13.5}, (2, 2), True)
        late = shipment(conn, "acme", "S2", {"loading": 10, "in_transit": 10.5, "arrived": 15, "delivered": 15 + 1 / 3},
                        (1, 2))
        shipment(conn, "acme", "S3", {"loading": 8.5, "in_transit": 9, "arrived": 12}, (0, 2))
        shipment(conn, "acme", "S4", {}, (0, 1), rush=True)
        conn.execute("INSERT INTO exceptions (demand_id, type, opened_at) VALUES (%s, 'late', %s)", (late, at(12)))
        conn.execute("INSERT INTO feedback (customer_id, demand_id, kind, rating, text, created_at) VALUES "
                     "('acme', %s, 'complaint', NULL, 'late', %s), ('acme', %s, 'damage', NULL, 'crushed', %s), "
                     "('acme', NULL, 'rating', 4, '', %s), ('acme', NULL, 'rating', 2, '', %s)",
                     (late, DAY, late, DAY, DAY, DAY))
        conn.commit()
        yield conn


def test_kpis_of_a_hand_built_month(conn: psycopg.Connection) -> None:
    acme = kpis.kpis(conn, START, END).loc["acme"]
    assert acme["shipments"] == 4
    assert acme["on_time_shipping"] == pytest.approx(2 / 3)  # S2 left at 10:30, after the 10:00 pickup
    assert acme["on_time_arrival"] == pytest.approx(2 / 3)  # of the three that arrived
    assert acme["fulfilment"] == pytest.approx(1 / 3)  # only S1 got every item delivered
    assert acme["rush_completion"] == pytest.approx(1 / 2)  # S1 done in time, S4 not
    assert acme["mean_transit_h"] == pytest.approx((3.5 + 4.5 + 3) / 3)
    assert acme["mean_door_dwell_min"] == pytest.approx((30 + 30 + 30) / 3)
    assert acme["mean_pod_min"] == pytest.approx((30 + 20) / 2)
    assert (acme["exceptions_per_100"], acme["exceptions_late"], acme["exceptions_off_route"]) == (25, 25, 0)
    assert (acme["damage_rate"], acme["complaint_rate"], acme["mean_rating"]) == (0.25, 0.25, 3)


def test_a_customer_without_shipments_has_no_rates_not_zeros(conn: psycopg.Connection) -> None:
    globex = kpis.kpis(conn, START, END).loc["globex"]
    assert globex["shipments"] == 0
    assert all(globex[k] is None for k in kpis.KPI_COLUMNS if k != "shipments")
    assert kpis.kpis(conn, END, END + timedelta(days=30)).loc["acme", "on_time_arrival"] is None


def test_abc_on_a_known_distribution() -> None:
    classes = kpis.abc(pd.Series({"a": 50, "b": 30, "c": 10, "d": 6, "e": 4, "z": 0}))["class"].to_dict()
    assert classes == {"a": "A", "b": "A", "c": "B", "d": "B", "e": "C", "z": "C"}
    assert kpis.abc(pd.Series({"solo": 7}))["class"].to_dict() == {"solo": "A"}
    assert set(kpis.abc(pd.Series({"x": 0, "y": 0}))["class"]) == {"C"}
    tie = kpis.abc(pd.Series({"m": 10, "k": 10}))  # ties by id: k first
    assert tie.index.tolist() == ["k", "m"] and tie["class"].tolist() == ["A", "A"]


@given(st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), st.integers(0, 10_000), min_size=1, max_size=30))
def test_abc_classes_never_rank_a_bigger_customer_lower(volumes: dict[str, int]) -> None:
    result = kpis.abc(pd.Series(volumes, dtype=int))
    rank = result["class"].map({"A": 0, "B": 1, "C": 2})
    for x in result.index:
        for y in result.index:
            if result.loc[x, "volume"] > result.loc[y, "volume"]:
                assert rank[x] <= rank[y]
    assert 0 <= result["share"].sum() <= 1 + 1e-9


@given(on_time=st.none() | st.floats(0, 1), fulfilment=st.none() | st.floats(0, 1),
       damage=st.none() | st.floats(0, 5), rating=st.none() | st.floats(1, 5))
def test_satisfaction_is_bounded_and_needs_some_evidence(on_time: float | None, fulfilment: float | None,
                                                        damage: float | None, rating: float | None) -> None:
    row = {"on_time_arrival": on_time, "fulfilment": fulfilment, "damage_rate": damage, "mean_rating": rating}
    value = kpis.satisfaction(row, "premium")
    if all(v is None for v in row.values()):
        assert value is None
    else:
        assert 0 <= value <= round(100 / kpis.EXPECTATION["premium"], 1)


def test_satisfaction_meets_expectation_at_the_service_levels_promise() -> None:
    row = {"on_time_arrival": 0.9, "fulfilment": 0.9, "damage_rate": 0.1, "mean_rating": 4.6}
    assert kpis.satisfaction(row, "standard") == 100.0
    assert kpis.satisfaction(row, "premium") < 100 < kpis.satisfaction(row, "economy")


def test_churn_lists_customers_whose_volume_fell() -> None:
    previous = pd.DataFrame({1: {"a": 10.0, "b": 10.0, "c": 0.0}, 2: {"a": 10.0, "b": 8.0, "c": 0.0}})
    risk = kpis.churn_risk(pd.Series({"a": 4.0, "b": 9.0, "c": 3.0}), previous, 0.3, "en")
    assert risk.index.tolist() == ["a"] and risk.loc["a", "change"] == -0.6
    assert risk.loc["a", "reason"] == "volume -60% against the mean of the previous 2 periods"
    in_chinese = kpis.churn_risk(pd.Series({"a": 4.0, "b": 9.0, "c": 3.0}), previous, 0.3, "zh-CN")
    assert in_chinese.loc["a", "reason"] == "运单量较前 2 个周期的平均值变化 -60%"


def test_the_kpi_endpoints(world: World) -> None:
    with TestClient(create_app(Settings(database_url=world.db_url))) as client:
        window = {"from": "2025-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
        mine = world.call(client, "GET", "/v1/customers/acme/kpis", "acme", params=window)
        assert mine.status_code == 200 and mine.json()["kpis"]["shipments"] == 0  # the world's demand is from now
        now = {"from": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
               "to": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
        answer = world.call(client, "GET", "/v1/customers/acme/kpis", "acme", params=now).json()
        assert [p["satisfaction"] for p in answer["satisfaction_trend"]] == [None, None, None]  # nothing before
        body = answer["kpis"]
        assert (body["shipments"], body["exceptions_per_100"], body["exceptions_late"]) == (1, 100, 100)
        csv = world.call(client, "GET", "/v1/customers/acme/kpis", "acme", params={**now, "format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        assert pd.read_csv(io.StringIO(csv.text)).loc[0, "exceptions_per_100"] == body["exceptions_per_100"]
        by_accept = client.get("/v1/customers/acme/kpis", params=now,
                               headers={**world.headers("acme"), "Accept": "text/csv"})
        assert by_accept.headers["content-type"].startswith("text/csv") and by_accept.text == csv.text
        assert world.call(client, "GET", "/v1/customers/globex/kpis", "acme", params=now).status_code == 404
        chart = world.call(client, "GET", "/v1/customers/acme/kpis/exceptions_per_100.svg", "acme",
                           params={**now, "periods": 4})
        assert chart.headers["content-type"].startswith("image/svg+xml")
        rects = ElementTree.fromstring(chart.text).iter("{http://www.w3.org/2000/svg}rect")
        bars = [float(r.get("height", "nan")) for r in rects]
        assert len(bars) == 4 and bars[:3] == [0, 0, 0] and bars[3] > 0  # only the last period has a shipment
        assert world.call(client, "GET", "/v1/customers/globex/kpis/fulfilment.svg", "acme").status_code == 404
        classes = world.call(client, "GET", "/v1/customers/abc", "crm", params=now).json()["customers"]
        assert {c["customer_id"]: c["class"] for c in classes} == {"acme": "A", "globex": "A"}
        assert world.call(client, "GET", "/v1/customers/abc", "acme").status_code == 403
    with TestClient(create_app(Settings(database_url=world.db_url, abc_a=0.5))) as client:  # thresholds from settings
        classes = world.call(client, "GET", "/v1/customers/abc", "crm", params=now).json()["customers"]
        assert {c["customer_id"]: c["class"] for c in classes} == {"acme": "A", "globex": "B"}
        assert world.call(client, "GET", "/v1/customers/at-risk", "dispatcher").json() == {"customers": []}
        record = world.call(client, "GET", "/v1/customers/acme", "acme").json()
        assert set(record) == {"basic", "inquiries_and_feedback", "logistics_demand", "demand_changes"}
        assert [d["external_ref"] for d in record["logistics_demand"]] == ["SO-A1"]
        assert world.call(client, "GET", "/v1/customers/globex", "acme").status_code == 404
