"""The API's texts for people in the language negotiated for each request: `?lang=`, else Accept-Language,
else the customer's configured language, else Chinese; said in Content-Language. The machine fields
(status codes, JSON keys) stay as they are, whatever the language."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from common.settings import Settings
from tests.api_world import World
from tracking_api.app import create_app


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=world.db_url, api_key_cache_seconds=0))) as c:
        yield c


def get(world: World, client: TestClient, path: str, who: str | None = "acme", language: str | None = None,
        **params: Any) -> Any:
    headers = {**world.headers(who), **({"Accept-Language": language} if language else {})}
    return client.get(path, headers=headers, params=params)


def in_transit(world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        conn.execute("INSERT INTO shipment_events (demand_id, status, ts, biz_step) SELECT id, 'in_transit', now(), "
                     "'departing' FROM demands WHERE external_ref = 'SO-A1'")
        conn.execute("UPDATE demands SET status = 'in_transit' WHERE external_ref = 'SO-A1'")


def customer_speaks(world: World, customer: str, language: str) -> None:
    with psycopg.connect(world.db_url) as conn:
        conn.execute("UPDATE customers SET language = %s WHERE id = %s", (language, customer))


def test_a_shipment_in_both_languages_by_explicit_choice(world: World, client: TestClient) -> None:
    in_transit(world)
    zh = get(world, client, "/v1/shipments/SO-A1", lang="zh-CN", language="en")
    en = get(world, client, "/v1/shipments/SO-A1", lang="en", language="zh-CN")
    assert (zh.headers["content-language"], en.headers["content-language"]) == ("zh-CN", "en")
    assert (zh.json()["status_text"], en.json()["status_text"]) == ("运输中", "In transit")
    assert [e["status_text"] for e in zh.json()["timeline"]] == ["运输中"]
    assert [(x["type_text"], x["state_text"]) for x in en.json()["exceptions"]] == [("Expected late", "Open")]
    assert [(x["type_text"], x["state_text"]) for x in zh.json()["exceptions"]] == [("预计延误", "待处理")]
    # the machine fields do not move with the language
    machine = {k: v for k, v in zh.json().items() if k not in ("timeline", "exceptions", "status_text")}
    assert machine == {k: v for k, v in en.json().items() if k not in ("timeline", "exceptions", "status_text")}
    assert zh.json()["status"] == "in_transit" and zh.json()["status_word"] == "InTransit"


def test_accept_language_by_q_value(world: World, client: TestClient) -> None:
    answer = get(world, client, "/v1/shipments", language="fr;q=1, en;q=0.9, zh;q=0.8")
    assert answer.headers["content-language"] == "en"
    assert [s["status_text"] for s in answer.json()["shipments"]] == ["Awaiting pickup"]
    answer = get(world, client, "/v1/shipments", language="en;q=0.2, zh-Hans-CN")
    assert [s["status_text"] for s in answer.json()["shipments"]] == ["待揽收"]


def test_the_customers_configured_language_when_the_request_says_none(world: World, client: TestClient) -> None:
    assert get(world, client, "/v1/shipments/SO-A1").json()["status_text"] == "待揽收"  # zh-CN by default
    customer_speaks(world, "acme", "en")
    answer = get(world, client, "/v1/shipments/SO-A1")
    assert answer.headers["content-language"] == "en" and answer.json()["status_text"] == "Awaiting pickup"
    assert get(world, client, "/v1/shipments/SO-A1", language="zh").json()["status_text"] == "待揽收"
    assert get(world, client, "/v1/shipments/SO-G1", who="globex").json()["status_text"] == "待揽收"


def test_a_share_link_speaks_the_shippers_language(world: World, client: TestClient) -> None:
    customer_speaks(world, "acme", "en")
    token = client.post("/v1/shipments/SO-A1/share", headers=world.headers("acme")).json()["token"]
    shared = get(world, client, f"/v1/shared/{token}", who=None)
    assert shared.headers["content-language"] == "en" and shared.json()["status_text"] == "Awaiting pickup"
    assert get(world, client, f"/v1/shared/{token}", who=None, language="zh-CN").json()["status_text"] == "待揽收"


def test_problem_details_speak_the_requests_language(world: World, client: TestClient) -> None:
    zh = get(world, client, "/v1/shipments/SO-NOPE")
    en = get(world, client, "/v1/shipments/SO-NOPE", language="en-GB")
    assert (zh.status_code, en.status_code) == (404, 404)
    assert (zh.json()["title"], zh.json()["detail"], zh.headers["content-language"]) == ("未找到", "没有这个运单",
                                                                                          "zh-CN")
    assert (en.json()["title"], en.json()["detail"]) == ("Not Found", "no such shipment")
    no_key = get(world, client, "/v1/shipments/SO-A1", who=None, lang="en")
    assert (no_key.status_code, no_key.json()["detail"]) == (401, "an API key is required: Authorization: Bearer <key>")
    assert get(world, client, "/v1/nowhere", lang="en").json()["detail"] == "Not Found"
    resolved = world.exception_ids["acme"]
    client.post(f"/v1/exceptions/{resolved}/resolve", headers=world.headers("dispatcher"))
    again = client.post(f"/v1/exceptions/{resolved}/resolve", headers=world.headers("dispatcher"))
    assert (again.status_code, again.json()["detail"]) == (409, "该异常当前为“已解决”")


def test_the_dispatchers_exception_queue_in_both_languages(world: World, client: TestClient) -> None:
    zh = get(world, client, "/v1/exceptions", who="dispatcher").json()["exceptions"]
    en = get(world, client, "/v1/exceptions", who="dispatcher", language="en").json()["exceptions"]
    assert {x["type_text"] for x in zh} == {"预计延误"} and {x["type_text"] for x in en} == {"Expected late"}
    assert [x["type"] for x in zh] == [x["type"] for x in en] == ["late", "late"]


def test_the_kpi_chart_in_both_languages(world: World, client: TestClient) -> None:
    window = {"from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z"}
    zh = get(world, client, "/v1/customers/acme/kpis/on_time_arrival.svg", **window)
    en = get(world, client, "/v1/customers/acme/kpis/on_time_arrival.svg", language="en", **window)
    assert "acme：准时到达率" in zh.text and "无数据" in zh.text
    assert "acme: On-time arrival" in en.text and "n/a" in en.text
    assert en.headers["content-language"] == "en"
