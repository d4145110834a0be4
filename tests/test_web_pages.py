"""The web pages in headless Chromium (tests/browser.py): status changes and fixes made through real
ingest show up without a reload, and the pages' stream reader parses any event stream however it is
cut; screenshots are kept as test artifacts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select, WebDriverWait

from common import epc
from common.contract import GPS_SCHEMA, RFID_SCHEMA, batch, iso_ms, topic
from common.settings import Settings
from crm_link.correlate import cursors, process_pending
from storage.vocabulary import EXCEPTION_STATES, EXCEPTION_TYPES, PARTITION_KEY, STATUSES
from tests.api_world import World
from tests.browser import WAIT_S, chromium, sign_in, text_of
from tests.helpers import ApiServer
from tests.test_ingest_worker import Publisher, gps_event, rfid_event, running, worker_settings
from tracking_api.app import create_app
from tracking_api.pages import WEB

CJK = re.compile(r"[\u4e00-\u9fff]")  # a Chinese character


@pytest.fixture
def server(world: World) -> Iterator[ApiServer]:
    with ApiServer(create_app(Settings(database_url=world.db_url))) as running_server:
        yield running_server


def with_note(browser: webdriver.Chrome, action: str, note: str) -> None:
    browser.find_element(By.CSS_SELECTOR, f'button[data-action="{action}"]').click()
    WebDriverWait(browser, WAIT_S).until(seen.alert_is_present())
    browser.switch_to.alert.send_keys(note)
    browser.switch_to.alert.accept()


def only_local_requests(browser: webdriver.Chrome, server: ApiServer) -> None:
    """Every request the page sent went to the API's own origin, and it tried none that the policy blocked."""
    events = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    urls = {e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"}
    assert urls and all(url.startswith((server.url, "data:")) for url in urls), urls
    assert browser.execute_script("return window.blockedByPolicy") == []


def test_the_tracking_page_follows_a_status_change_made_through_ingest(
        world: World, server: ApiServer, browser: webdriver.Chrome, artifacts: Path, mqtt_url: str,
        gateway_id: str) -> None:
    browser.get(f"{server.url}/track/SO-A1")
    sign_in(browser, world.keys["acme"])
    text_of(browser, "progress", "0 of 1 pallet loaded")
    text_of(browser, "live", "live")

    def current_step() -> str:
        # read in one script: the steps are redrawn on every status event
        return browser.execute_script("return document.querySelector('#steps li.current').dataset.status")

    def trail() -> list[list[float]]:
        return browser.execute_script("return trail.getLatLngs().map((p) => [p.lat, p.lng])")

    assert current_step() == "pending"
    browser.save_screenshot(str(artifacts / "tracking-pending.png"))

    with running(worker_settings(world.db_url, mqtt_url)), psycopg.connect(world.db_url, autocommit=True) as conn:
        publisher = Publisher(mqtt_url)

        def through_ingest(kind: str, schema: str, event: dict, table: str) -> None:
            """Publish one event, await its row, then let the CRM link correlate until it has consumed it
            (its horizon waits for ingest's other transactions, e.g. retained states of other gateways)."""
            publisher.send(topic(gateway_id, kind), batch(schema, gateway_id, [event]))
            WebDriverWait(conn, WAIT_S).until(lambda c: c.execute(
                f"SELECT count(*) FROM {table} WHERE gateway_id = %s AND seq = %s",
                (gateway_id, event["seq"])).fetchone()[0] == 1)
            WebDriverWait(conn, WAIT_S).until(lambda c: process_pending(c) >= 0 and c.execute(
                f"SELECT (k.txid, k.id) >= (t.txid, t.id) FROM consumer_cursors k, {table} t "
                f"WHERE k.consumer = (%s::text[])[cargotrace_partition({PARTITION_KEY[table]}) + 1] "
                "AND t.gateway_id = %s AND t.seq = %s",
                (cursors(table), gateway_id, event["seq"])).fetchone()[0])

        # Times of now, after the world's own fix of the truck (a minute ago, outside the warehouse): read in
        # time order, an older pallet read would be followed by that fix and go straight to in transit.
        read_at = datetime.now(UTC)
        through_ingest("rfid", RFID_SCHEMA, rfid_event(1, epc.encode(world.epc["acme"]), first_seen=iso_ms(read_at),
                                                       last_seen=iso_ms(read_at)), "tag_observations")
        text_of(browser, "progress", "1 of 1 pallet loaded")  # one pallet, singular; no reload: the stream brought it
        assert current_step() == "loaded"
        assert "Loaded" in browser.find_element(By.ID, "timeline").text
        browser.save_screenshot(str(artifacts / "tracking-loaded.png"))

        # the truck leaves the warehouse: in transit, and from then on its fixes draw the trail live
        through_ingest("gps", GPS_SCHEMA, gps_event(2, vehicle="TRK-A", lat=31.26, lon=121.50,
                                                     ts=iso_ms(read_at + timedelta(seconds=10))), "positions")
        WebDriverWait(browser, WAIT_S).until(lambda b: current_step() == "in_transit")
        assert trail()[-1] == [31.26, 121.50]
        through_ingest("gps", GPS_SCHEMA, gps_event(3, vehicle="TRK-A", lat=31.28, lon=121.53,
                                                     ts=iso_ms(read_at + timedelta(seconds=20))), "positions")
        WebDriverWait(browser, WAIT_S).until(lambda b: trail()[-1] == [31.28, 121.53])
        assert trail() == [[31.26, 121.50], [31.28, 121.53]]  # since departure, each fix once
        publisher.close()

    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == 1
    browser.save_screenshot(str(artifacts / "tracking-in-transit.png"))
    only_local_requests(browser, server)


def test_the_tracking_page_speaks_chinese_or_english_as_chosen_without_a_reload(
        world: World, server: ApiServer, browser: webdriver.Chrome, artifacts: Path) -> None:
    browser.get(f"{server.url}/track/SO-A1")
    sign_in(browser, world.keys["acme"])  # the browser asks for English
    text_of(browser, "word", "Awaiting pickup")
    timeline = browser.find_element(By.ID, "timeline").text
    assert "Order received" in timeline and "China Standard Time" in timeline
    assert re.search(r"\b([01]\d|2[0-3]):[0-5]\d China Standard Time", timeline), timeline  # 24-hour clock
    Select(browser.find_element(By.ID, "lang")).select_by_value("zh-CN")
    text_of(browser, "word", "待揽收")
    assert browser.execute_script("return document.documentElement.lang") == "zh-CN"
    steps = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#steps li")]
    assert steps == ["待揽收", "装车中", "已装车", "运输中", "已到达", "已签收"]
    assert "北京时间" in browser.find_element(By.ID, "timeline").text
    text_of(browser, "progress", "已装车 0/1 托")
    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == 1
    box = ("return ['word', 'progress', 'map', 'timeline']"
           ".map((id) => document.getElementById(id).getBoundingClientRect())")
    word, _, on_the_right, _ = browser.execute_script(box)
    assert on_the_right["left"] > word["right"]  # a wide screen: the map beside the status
    browser.save_screenshot(str(artifacts / "tracking-zh-desktop.png"))
    browser.set_window_size(390, 844)  # a phone: status, ETA, the map, then the timeline, one under the other
    tops = [b["top"] for b in browser.execute_script(box)]
    assert tops == sorted(tops) and len(set(tops)) == 4, tops
    browser.save_screenshot(str(artifacts / "tracking-zh-phone.png"))
    browser.refresh()  # the choice is remembered
    text_of(browser, "word", "待揽收")
    Select(browser.find_element(By.ID, "lang")).select_by_value("en")
    text_of(browser, "word", "Awaiting pickup")
    browser.save_screenshot(str(artifacts / "tracking-en-phone.png"))
    only_local_requests(browser, server)


def test_without_a_choice_or_a_browser_language_it_knows_the_page_speaks_the_customers_language_in_the_sites_zone(
        world: World, server: ApiServer) -> None:
    with psycopg.connect(world.db_url) as conn:
        conn.execute("UPDATE customers SET language = 'en' WHERE id = 'acme'")
        conn.execute("UPDATE sites SET time_zone = 'Asia/Urumqi' WHERE id = "
                     "(SELECT destination_site_id FROM demands WHERE external_ref = 'SO-A1')")
    with chromium("fr-FR,fr") as browser:  # a French browser: neither of the pages' languages
        browser.get(f"{server.url}/track/SO-A1")
        sign_in(browser, world.keys["acme"])
        text_of(browser, "word", "Awaiting pickup")  # the customer's configured English
        timeline = browser.find_element(By.ID, "timeline").text
        assert "China Standard Time" not in timeline and "GMT+6" in timeline, timeline  # Ürümqi's time, named
        with psycopg.connect(world.db_url) as conn:
            created = conn.execute("SELECT created_at FROM demands WHERE external_ref = 'SO-A1'").fetchone()[0]
        local = created.astimezone(ZoneInfo("Asia/Urumqi")).strftime("%H:%M")
        assert f"{local} GMT+6" in timeline, (local, timeline)
        with psycopg.connect(world.db_url) as conn:  # on its way, with the band the history gives
            eta, p10, p90 = (created + timedelta(minutes=m) for m in (120, 100, 150))
            conn.execute("UPDATE demands SET status = 'in_transit', eta = %s, eta_p10 = %s, eta_p90 = %s "
                         "WHERE external_ref = 'SO-A1'", (eta, p10, p90))
        browser.refresh()
        clock = [(created + timedelta(minutes=m)).astimezone(ZoneInfo("Asia/Urumqi")).strftime("%H:%M")
                 for m in (100, 150)]
        text_of(browser, "eta", f"(between {clock[0]} and {clock[1]})")


def test_the_pages_catalogue_has_every_key_in_both_languages() -> None:
    catalogue = json.loads((WEB / "static" / "messages.json").read_text())
    assert set(catalogue) == {"zh-CN", "en"}
    assert set(catalogue["zh-CN"]) == set(catalogue["en"])
    pages = "".join((WEB / name).read_text() for name in ("track.html", "console.html", "static/track.js",
                                                             "static/console.js", "static/basemap.js"))
    used = set(re.findall(r'data-i18n="([^"]+)"', pages)) | set(re.findall(r'i18n\.t\("([^"]+)"', pages))
    assert len(used) > 20
    templated = {f"{prefix}.{word}" for prefix, words in (
        ("status", STATUSES), ("exception", EXCEPTION_TYPES + EXCEPTION_STATES), ("state", EXCEPTION_STATES),
        ("action", ("acknowledge", "resolve")), ("live", ("connecting", "live", "reconnecting", "stopped",
                                                          "not_connected")),
        ("legend", ("vehicle", "trail", "route", "origin", "destination", "geofence"))) for word in words}
    assert used | templated <= set(catalogue["en"]), (used | templated) - set(catalogue["en"])


def test_the_api_documentation_opens_whole_on_a_closed_network(server: ApiServer, browser: webdriver.Chrome,
                                                               artifacts: Path) -> None:
    browser.get(f"{server.url}/docs")
    WebDriverWait(browser, WAIT_S).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10)
    paths = {e.text.replace("\u200b", "") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/shipments/{external_ref}", "/v1/demands/{external_ref}", "/healthz"} <= paths
    browser.save_screenshot(str(artifacts / "docs.png"))
    only_local_requests(browser, server)


def test_a_share_link_opens_the_page_without_a_key(world: World, server: ApiServer, browser: webdriver.Chrome,
                                                   artifacts: Path) -> None:
    import httpx
    url = httpx.post(f"{server.url}/v1/shipments/SO-G1/share", headers=world.headers("globex")).json()["url"]
    browser.get(url)
    text_of(browser, "ref", "SO-G1")
    text_of(browser, "progress", "0 of 1 pallet loaded")
    text_of(browser, "live", "live")  # the stream opened with the token alone
    assert not browser.find_element(By.ID, "key-form").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0
    browser.save_screenshot(str(artifacts / "shared.png"))
    only_local_requests(browser, server)


def test_the_console_lists_exceptions_and_acknowledges_one_live(
        world: World, server: ApiServer, browser: webdriver.Chrome, artifacts: Path, mqtt_url: str,
        gateway_id: str) -> None:
    browser.get(f"{server.url}/console")
    sign_in(browser, world.keys["dispatcher"])
    text_of(browser, "live", "live")
    acme = world.exception_ids["acme"]
    WebDriverWait(browser, WAIT_S).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#queue tr[data-exception]")) == 2)
    assert {row.get_attribute("data-vehicle") for row in browser.find_elements(By.CSS_SELECTOR, "#vehicles tr")} == {
        "TRK-A", "TRK-G"}
    assert browser.execute_script("return document.querySelectorAll('path.leaflet-interactive').length") >= 4
    with_note(browser, f"acknowledge-{acme}", "driver called")
    WebDriverWait(browser, WAIT_S).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#queue tr[data-exception]")) == 1)
    with psycopg.connect(world.db_url) as conn:
        assert conn.execute("SELECT state, note FROM exceptions WHERE id = %s", (acme,)).fetchone() == (
            "acknowledged", "driver called")
        # another dispatcher resolves the other one: this console sees it go without a reload
        conn.execute("UPDATE exceptions SET state = 'resolved' WHERE id = %s", (world.exception_ids["globex"],))
    text_of(browser, "queue", "no open exceptions")

    truck = '#vehicles tr[data-vehicle="TRK-A"]'
    assert browser.find_element(By.CSS_SELECTOR, truck).get_attribute("data-fix") == "31.25,121.5"
    with running(worker_settings(world.db_url, mqtt_url)):  # a fix through ingest moves the truck on the map
        publisher = Publisher(mqtt_url)
        publisher.send(topic(gateway_id, "gps"), batch(GPS_SCHEMA, gateway_id,
                                                       [gps_event(1, vehicle="TRK-A", lat=31.27, lon=121.52)]))
        publisher.close()
        WebDriverWait(browser, WAIT_S).until(seen.text_to_be_present_in_element_attribute(
            (By.CSS_SELECTOR, truck), "data-fix", "31.27,121.52"))
    assert browser.execute_script("const p = markers.get('TRK-A').getLatLng(); return [p.lat, p.lng]") == [
        31.27, 121.52]
    browser.save_screenshot(str(artifacts / "console.png"))

    Select(browser.find_element(By.ID, "state")).select_by_value("acknowledged")
    WebDriverWait(browser, WAIT_S).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#queue tr[data-exception]")) == 1)
    with_note(browser, f"resolve-{acme}", "arrived 40 min late, customer told")
    text_of(browser, "queue", "no acknowledged exceptions")
    with psycopg.connect(world.db_url) as conn:
        assert conn.execute("SELECT state, note FROM exceptions WHERE id = %s", (acme,)).fetchone() == (
            "resolved", "arrived 40 min late, customer told")

    def listed() -> list[str]:  # read in one go: the list is redrawn as events arrive
        return browser.execute_script(
            "return [...document.querySelectorAll('#shipments tr')].map((r) => r.dataset.shipment)")

    WebDriverWait(browser, WAIT_S).until(lambda b: listed() == ["acme/SO-A1", "globex/SO-G1"])  # all customers
    Select(browser.find_element(By.ID, "f-attention")).select_by_value("exception")  # none left unresolved
    text_of(browser, "shipments", "no shipments match")
    Select(browser.find_element(By.ID, "f-attention")).select_by_value("")
    browser.find_element(By.ID, "f-customer").send_keys("globex\n")
    WebDriverWait(browser, WAIT_S).until(lambda b: listed() == ["globex/SO-G1"])
    # the shipment's own page, with the dispatcher's key (the list may be redrawn under the pointer)
    WebDriverWait(browser, WAIT_S, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda b: b.find_element(By.LINK_TEXT, "SO-G1").click() or True)
    text_of(browser, "ref", "SO-G1")
    assert browser.current_url.endswith("/track/SO-G1?customer_id=globex")
    assert browser.find_element(By.ID, "error").text == ""
    only_local_requests(browser, server)


def test_the_console_takes_another_key_after_a_refused_one_and_keeps_a_finite_zoom_after_the_last_trip(
        world: World, server: ApiServer, browser: webdriver.Chrome, artifacts: Path) -> None:
    with psycopg.connect(world.db_url) as conn:  # every trip over; one truck left with a position
        conn.execute("UPDATE demands SET status = 'delivered'")
        conn.execute("DELETE FROM positions WHERE vehicle_id = 'TRK-G'")
    browser.get(f"{server.url}/console")
    sign_in(browser, "ct_00000000_not-a-key")
    text_of(browser, "live", "not connected")
    refusal = browser.find_element(By.ID, "error").text
    assert refusal and not CJK.search(refusal) and browser.find_element(By.ID, "key-form").is_displayed()
    Select(browser.find_element(By.ID, "lang")).select_by_value("zh-CN")  # the API's refusal follows the page
    browser.find_element(By.ID, "key").clear()
    sign_in(browser, "ct_00000000_still-not-a-key")
    WebDriverWait(browser, WAIT_S).until(lambda b: CJK.search(b.find_element(By.ID, "error").text))
    Select(browser.find_element(By.ID, "lang")).select_by_value("en")
    browser.find_element(By.ID, "key").clear()
    sign_in(browser, world.keys["dispatcher"])
    text_of(browser, "live", "live")
    assert browser.find_element(By.ID, "error").text == ""
    WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#vehicles tr"))
    zoom = browser.execute_script("return map.getZoom()")
    assert zoom is not None and 3 <= zoom <= 15  # was Infinity: one point fitted on a map without tiles
    assert "TRK-A" in browser.find_element(By.CSS_SELECTOR, ".leaflet-tooltip.label-vehicle").text  # its label
    browser.save_screenshot(str(artifacts / "console-after-trips.png"))
    Select(browser.find_element(By.ID, "lang")).select_by_value("zh-CN")  # the dispatcher's Chinese
    text_of(browser, "live", "实时")
    text_of(browser, "queue", "预计延误")
    assert "北京时间" in browser.find_element(By.ID, "queue").text
    browser.save_screenshot(str(artifacts / "console-zh.png"))
    browser.set_window_size(390, 844)  # a dispatcher on the road
    browser.save_screenshot(str(artifacts / "console-zh-phone.png"))
    only_local_requests(browser, server)


LINE = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"), max_size=12)
EVENTS = st.lists(st.tuples(LINE, st.lists(LINE, min_size=1, max_size=3), st.none() | LINE), max_size=6)
PARSE = """
const [source, chunks] = arguments;
const cargotrace = new Function(source + "; return cargotrace;")();
const events = [], retries = [];
const parser = cargotrace.sse((name, data, id) => events.push([name, data, id]), (ms) => retries.push(ms));
for (const chunk of chunks) parser.push(chunk);
return [events, retries];
"""


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(events=EVENTS, newline=st.sampled_from(["\n", "\r", "\r\n"]), retry=st.integers(0, 10**6),
       cuts=st.lists(st.integers(0, 10**4)))
def test_the_pages_stream_reader_parses_any_event_stream_cut_anywhere(
        browser: webdriver.Chrome, events: list[tuple[str, list[str], str | None]], newline: str, retry: int,
        cuts: list[int]) -> None:
    lines, expected, last_id = [": keep-alive", f"retry: {retry}", "retry: soon"], [], ""
    for name, data, event_id in events:
        lines += [f"event: {name}"] + [f"data: {d}" for d in data]
        if event_id is not None:
            lines.append(f"id: {event_id}")
            last_id = event_id
        lines.append("")
        expected.append([name or "message", "\n".join(data), last_id])
    lines.append("data: never finished")
    text = newline.join(lines)
    bounds = sorted({0, len(text), *(cut % (len(text) + 1) for cut in cuts)})
    chunks = [text[a:b] for a, b in pairwise(bounds)]
    source = (WEB / "static" / "common.js").read_text()
    assert browser.execute_script(PARSE, source, chunks) == [expected, [retry]]
