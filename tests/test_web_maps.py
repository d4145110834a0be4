"""The pages' maps in headless Chromium (tests/browser.py): positions converted from WGS-84 to the tiles'
datum exactly as published converters do; tiles from a local tile server in each coordinate system
with the truck on the pixel its converted position maps to, computed here independently of Leaflet;
images from any other host blocked; and, with no tiles (a closed network), the drawn map: sites with
their names, route, origin, destination, the truck with its plate, a scale bar and a legend in the
reader's language."""

from __future__ import annotations

import math
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from common.settings import Settings
from tests.api_world import World
from tests.browser import WAIT_S, sign_in, text_of
from tests.helpers import ApiServer
from tracking_api.app import create_app
from tracking_api.pages import WEB

# Published pairs. WGS-84 → GCJ-02: googollee/eviltransform python/test.py (Shanghai, Shenzhen, Beijing).
# WGS-84 → GCJ-02 and → BD-09 of Tiananmen, and GCJ-02 → BD-09: wyxloading/coordtransform-rs tests/tests.rs
# (a port of wandergis/coordtransform). [lat, lon] each.
GCJ = [((31.1774276, 121.5272106), (31.17530398364597, 121.531541859215)),
       ((22.543847, 113.912316), (22.540796131694766, 113.9171764808363)),
       ((39.911954, 116.377817), (39.91334545536069, 116.38404722455657)),
       ((39.915, 116.404), (39.91640428150164, 116.41024449916938))]
BD = [((39.915, 116.404), (39.922699552216216, 116.41662724378733))]
TIANANMEN = {"wgs84": (39.915, 116.404), "gcj02": GCJ[3][1], "bd09": BD[0][1]}
# Baidu's own projection of BD-09 (116.404, 39.915), BMap.MercatorProjection().lngLatToPoint, as quoted in
# sureleo/leaflet-baidu's README: metres east and north of (0, 0), one a pixel at zoom 18.
BAIDU_POINT = ((39.915, 116.404), (12958175.0, 4825923.77))

CONVERT = """
const [source, crs, points] = arguments;
const coords = new Function(source + "; return coords;")();
return points.map(([lat, lon]) => {
  const shown = coords.display(crs)(lat, lon);
  return [shown, coords.toWgs(crs)(...shown)];
});
"""


def converted(browser: webdriver.Chrome, crs: str, points: list[tuple[float, float]]) -> list[list[list[float]]]:
    """Each point shown in `crs` by the pages' coords.js, and that brought back: [[shown, back], ...]."""
    return browser.execute_script(CONVERT, (WEB / "static" / "coords.js").read_text(), crs, points)


def test_positions_convert_as_the_published_pairs(browser: webdriver.Chrome) -> None:
    for crs, pairs in (("gcj02", GCJ), ("bd09", BD)):
        for (wgs, published), (shown, back) in zip(pairs, converted(browser, crs, [w for w, _ in pairs]), strict=True):
            assert shown == pytest.approx(published, abs=1e-9), (crs, wgs)
            assert back == pytest.approx(wgs, abs=1e-9), (crs, wgs)  # the inverse, found by iteration
    [[shown, back]] = converted(browser, "wgs84", [TIANANMEN["wgs84"]])
    assert shown == back == list(TIANANMEN["wgs84"])


CHINA = st.tuples(st.floats(18.2, 53.4), st.floats(73.7, 134.7))  # inside the datums' box, with a margin
ABROAD = st.tuples(st.floats(-90, 90), st.floats(-180, 180)).filter(
    lambda p: not (0.8293 <= p[0] <= 55.8271 and 72.004 <= p[1] <= 137.8347))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=60)
@given(crs=st.sampled_from(["gcj02", "bd09"]), china=st.lists(CHINA, min_size=1, max_size=20),
       abroad=st.lists(ABROAD, min_size=1, max_size=5))
def test_a_converted_position_comes_back_within_1e_6_degrees_and_abroad_nothing_moves(
        browser: webdriver.Chrome, crs: str, china: list[tuple[float, float]],
        abroad: list[tuple[float, float]]) -> None:
    for point, (shown, back) in zip(china, converted(browser, crs, china), strict=True):
        assert back == pytest.approx(point, abs=1e-6), (crs, point, shown)
        # the offsets are hundreds of metres, never more than a few kilometres
        assert 0 < max(abs(shown[0] - point[0]), abs(shown[1] - point[1])) < 0.03, (crs, point, shown)
    for point, (shown, back) in zip(abroad, converted(browser, crs, abroad), strict=True):
        assert shown == back == list(point)


# --- tiles from a local tile server -----------------------------------------------------------------------

def png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A solid colour tile: the smallest PNG the standard library can write (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = (b"\0" + bytes(rgb) * size) * size
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


TILES = (png((222, 231, 214)), png((235, 228, 212)))  # a checkerboard, so screenshots show the grid


class TileServer:
    """Tiles on 127.0.0.1 at /{anything}/{z}/{x}/{y}.png; remembers every path asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        asked = self.asked

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asked.append(self.path)
                found = re.fullmatch(r"/\w+/(-?\d+)/(-?\d+)/(-?\d+)\.png", self.path)
                body = TILES[sum(int(n) for n in found.groups()[1:]) % 2] if found else b""
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def tile_server() -> Iterator[TileServer]:
    tiles = TileServer()
    yield tiles
    tiles.close()


def web_mercator(lat: float, lon: float, zoom: int) -> tuple[int, int, float, float]:
    """The XYZ tile (x, y) that holds the point at `zoom`, and the point's pixel in that tile from its top left."""
    world = 256 * 2 ** zoom
    x = (lon + 180) / 360 * world
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * world
    return math.floor(x / 256), math.floor(y / 256), x % 256, y % 256


def baidu_metres(lat: float, lon: float) -> tuple[float, float]:
    """Mercator on the Clarke 1866 ellipsoid: metres east of the prime meridian, north of the equator."""
    a, b = 6378206.4, 6356583.8
    e = math.sqrt(1 - (b / a) ** 2)
    phi = math.radians(lat)
    return a * math.radians(lon), a * math.log(
        math.tan(math.pi / 4 + phi / 2) * ((1 - e * math.sin(phi)) / (1 + e * math.sin(phi))) ** (e / 2))


def baidu(lat: float, lon: float, zoom: int) -> tuple[int, int, float, float]:
    """Baidu's tile (x, y; rows counted northwards from the equator) and the point's pixel in it from its top left."""
    x, y = (metres * 2 ** (zoom - 18) for metres in baidu_metres(lat, lon))
    column, row = math.floor(x / 256), math.floor(y / 256)
    return column, row, x - column * 256, (row + 1) * 256 - y


def test_baidus_projection_is_mercator_on_the_clarke_1866_ellipsoid() -> None:
    assert baidu_metres(*BAIDU_POINT[0]) == pytest.approx(BAIDU_POINT[1], abs=0.05)


def put_the_truck_at_tiananmen(db_url: str) -> None:
    """SO-A1 in transit in Beijing: its two sites a few hundred metres either side, the truck's last fix on
    the published point."""
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE sites SET lat = 39.912, lon = 116.398 WHERE id = 'wh-sh1'")
        conn.execute("UPDATE sites SET lat = 39.918, lon = 116.410 WHERE id = 'dc-pd'")
        conn.execute("UPDATE demands SET status = 'in_transit', planned_route = NULL WHERE external_ref = 'SO-A1'")
        conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon) "
                     "VALUES ('gw-map', 1, now(), 'TRK-A', %s, %s)", TIANANMEN["wgs84"])


ZOOM = 16
CENTRE = "const r = arguments[0].getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]"
CORNER = "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width]"
LOADED = "return arguments[0].complete && arguments[0].naturalWidth === 256"


@pytest.mark.parametrize("crs", ["wgs84", "gcj02", "bd09"])
def test_the_truck_sits_on_its_converted_pixel_of_tiles_from_a_local_server(
        world: World, tile_server: TileServer, browser: webdriver.Chrome, artifacts: Path, crs: str) -> None:
    put_the_truck_at_tiananmen(world.db_url)
    settings = Settings(database_url=world.db_url, map_tiles=f"{tile_server.url}/{crs}/{{z}}/{{x}}/{{y}}.png",
                        map_crs=crs, map_attribution="© test tiles")
    with ApiServer(create_app(settings)) as server:
        browser.get(f"{server.url}/track/SO-A1")
        sign_in(browser, world.keys["acme"])
        WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script("return vehicle !== null"))
        browser.execute_script(f"map.setView(vehicle.getLatLng(), {ZOOM}, {{ animate: false }})")
        column, row, dx, dy = (baidu if crs == "bd09" else web_mercator)(*TIANANMEN[crs], ZOOM)
        tile = WebDriverWait(browser, WAIT_S).until(lambda b: b.find_element(
            By.CSS_SELECTOR, f'img.leaflet-tile[src="{tile_server.url}/{crs}/{ZOOM}/{column}/{row}.png"]'))
        WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script(LOADED, tile))
        assert f"/{crs}/{ZOOM}/{column}/{row}.png" in tile_server.asked  # it came from the tile server
        assert all(path.startswith(f"/{crs}/") for path in tile_server.asked)
        left, top, width = browser.execute_script(CORNER, tile)
        truck = browser.execute_script(CENTRE, browser.execute_script("return vehicle.getElement()"))
        assert width == 256
        assert truck == pytest.approx([left + dx, top + dy], abs=1.0), (crs, column, row)
        assert "© test tiles" in browser.find_element(By.CSS_SELECTOR, ".leaflet-control-attribution").text

        # The policy admits the tile server and no other host: an image from elsewhere is refused
        assert browser.execute_script("return window.blockedByPolicy") == []
        browser.execute_script("document.body.append(Object.assign(new Image(), "
                               "{ src: 'http://tiles.elsewhere.test/1/1/1.png' }))")
        WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script("return window.blockedByPolicy") == [
            "http://tiles.elsewhere.test/1/1/1.png"])
        browser.save_screenshot(str(artifacts / f"tiles-{crs}.png"))


# --- no tiles: the drawn map -------------------------------------------------------------------------------

YARD = {"type": "Polygon", "coordinates": [[[121.546, 31.297], [121.554, 31.297], [121.554, 31.303],
                                             [121.550, 31.300], [121.546, 31.303], [121.546, 31.297]]]}
LAYERS = """
const found = { polygon: 0, circle: 0, marker: 0, line: 0 };
map.eachLayer((layer) => {
  if (layer instanceof L.Polygon) found.polygon++;
  else if (layer instanceof L.Circle) found.circle++;
  else if (layer instanceof L.CircleMarker) found.marker++;
  else if (layer instanceof L.Polyline) found.line++;
});
return found;
"""


def labels(browser: webdriver.Chrome) -> set[str]:
    return {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".leaflet-tooltip")}


def test_without_tiles_the_page_draws_sites_route_and_the_truck_with_a_legend_in_either_language(
        world: World, browser: webdriver.Chrome, artifacts: Path) -> None:
    with psycopg.connect(world.db_url) as conn:  # in transit, to a U-shaped yard, on a truck with a plate
        conn.execute("UPDATE sites SET geofence_polygon = %s WHERE id = 'dc-pd'", (psycopg.types.json.Json(YARD),))
        conn.execute("UPDATE vehicles SET plate = '沪A12345' WHERE id = 'TRK-A'")
        conn.execute("UPDATE demands SET status = 'in_transit' WHERE external_ref = 'SO-A1'")
    with ApiServer(create_app(Settings(database_url=world.db_url))) as server:
        browser.get(f"{server.url}/track/SO-A1")
        sign_in(browser, world.keys["acme"])  # the browser asks for English
        WebDriverWait(browser, WAIT_S).until(lambda b: {"Warehouse", "Distribution centre", "沪A12345"} <= labels(b))
        # origin and destination areas (a circle, the yard's outline), their markers and the truck, the
        # planned route and the trail
        assert browser.execute_script(LAYERS) == {"polygon": 1, "circle": 1, "marker": 3, "line": 2}
        legend = browser.find_element(By.CSS_SELECTOR, ".legend").text.splitlines()
        assert legend == ["Truck", "Route driven", "Planned route", "Origin", "Destination", "Site area"]
        assert re.fullmatch(r"\d+ k?m", browser.find_element(By.CSS_SELECTOR, ".leaflet-control-scale-line").text)
        assert 3 <= browser.execute_script("return map.getZoom()") <= 16
        assert not browser.find_elements(By.CSS_SELECTOR, ".leaflet-control-attribution, img.leaflet-tile")
        browser.save_screenshot(str(artifacts / "map-en-desktop.png"))
        browser.set_window_size(390, 844)  # a phone: the map below the status
        browser.execute_script("document.getElementById('map').scrollIntoView()")
        browser.save_screenshot(str(artifacts / "map-en-phone.png"))

        Select(browser.find_element(By.ID, "lang")).select_by_value("zh-CN")
        text_of(browser, "word", "运输中")
        legend = browser.find_element(By.CSS_SELECTOR, ".legend").text.splitlines()
        assert legend == ["车辆", "已行驶路线", "计划路线", "起点", "目的地", "场地范围"]
        browser.execute_script("document.getElementById('map').scrollIntoView()")
        browser.save_screenshot(str(artifacts / "map-zh-phone.png"))
        browser.set_window_size(1280, 900)
        browser.save_screenshot(str(artifacts / "map-zh-desktop.png"))
        browser.get("about:blank")  # the page's stream closed: the server stops at once


def test_the_console_names_the_sites_and_the_trucks_plates_and_gives_a_picked_point_in_wgs84(
        world: World, browser: webdriver.Chrome, artifacts: Path) -> None:
    with psycopg.connect(world.db_url) as conn:
        conn.execute("UPDATE vehicles SET plate = '沪B67890' WHERE id = 'TRK-G'")
    settings = Settings(database_url=world.db_url, map_crs="gcj02")  # no tiles; shown as they would be on AMap's
    with ApiServer(create_app(settings)) as server:
        browser.get(f"{server.url}/console")
        sign_in(browser, world.keys["dispatcher"])
        WebDriverWait(browser, WAIT_S).until(
            lambda b: {"Warehouse", "Distribution centre", "TRK-A", "TRK-G 沪B67890"} <= labels(b))
        assert browser.find_element(By.CSS_SELECTOR, ".legend").text.splitlines() == [
            "Truck", "Planned route", "Destination", "Site area"]
        assert browser.find_elements(By.CSS_SELECTOR, ".leaflet-control-scale-line")
        # the truck is drawn where GCJ-02 puts its fix (31.25, 121.5), and a click there gives the fix back
        shown = browser.execute_script("const p = markers.get('TRK-A').getLatLng(); return [p.lat, p.lng]")
        assert shown != [31.25, 121.5] and shown == pytest.approx([31.25, 121.5], abs=0.01)
        browser.execute_script("map.fire('click', { latlng: markers.get('TRK-A').getLatLng() })")
        WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".leaflet-popup-content"))
        assert browser.find_element(By.CSS_SELECTOR, ".leaflet-popup-content").text == "WGS-84: 31.250000, 121.500000"
        browser.save_screenshot(str(artifacts / "console-map.png"))
