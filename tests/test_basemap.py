"""The base map's settings: a tile URL template is checked when the settings are read (a mistake is one
line naming the setting and what to write), and the pages' Content-Security-Policy admits images from
the configured tile hosts and no other."""

from __future__ import annotations

import re

import pydantic
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from common.basemap import origins
from common.failures import describe
from common.settings import Settings
from tracking_api.app import create_app

OSM = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
AMAP = "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
TIANDITU = ("https://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=vec"
            "&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=KEY")
ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$")


def test_the_providers_templates_give_their_hosts() -> None:
    assert origins(OSM, "abc") == ["https://tile.openstreetmap.org"]
    assert origins(AMAP, "1234") == [f"https://webrd0{n}.is.autonavi.com" for n in "1234"]
    assert origins(TIANDITU, "01234567") == [f"https://t{n}.tianditu.gov.cn" for n in "01234567"]
    assert origins("http://127.0.0.1:8111/{z}/{x}/{-y}.png?{s}", "ab") == ["http://127.0.0.1:8111"]


@pytest.mark.parametrize(("settings", "line"), [
    ({"map_tiles": "https://tile.openstreetmap.org/{z}/{x}.png"},
     "CARGOTRACE_MAP_TILES='https://tile.openstreetmap.org/{z}/{x}.png' is invalid: a tile URL template needs {z}, "
     "{x} and {y}: e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
    ({"map_labels": "tiles.example.com/{z}/{x}/{y}.png"},
     "CARGOTRACE_MAP_LABELS='tiles.example.com/{z}/{x}/{y}.png' is invalid: the template must be an http:// or "
     "https:// URL: e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
    ({"map_tiles": AMAP, "map_subdomains": ""},
     f"CARGOTRACE_MAP_TILES={AMAP!r} is invalid: {{s}} needs CARGOTRACE_MAP_SUBDOMAINS, the characters it stands "
     "for (e.g. abc)"),
    ({"map_tiles": "https://{z}.example.com/{x}/{y}.png"},
     "CARGOTRACE_MAP_TILES='https://{z}.example.com/{x}/{y}.png' is invalid: only {s} may stand in the host, and no "
     "user name: e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
    ({"map_tiles": "https://example.com/{zoom}/{x}/{y}.png"},
     "CARGOTRACE_MAP_TILES='https://example.com/{zoom}/{x}/{y}.png' is invalid: {zoom} is no tile placeholder: use "
     "{z}, {x}, {y} and {s} only, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
    ({"map_crs": "baidu"}, "CARGOTRACE_MAP_CRS='baidu' is invalid: input should be 'wgs84', 'gcj02' or 'bd09'"),
])
def test_a_wrong_base_map_setting_is_one_line_naming_it_and_the_remedy(settings: dict[str, str], line: str) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        Settings(**settings)
    assert describe(raised.value) == line


def test_an_empty_template_is_no_base_map() -> None:
    assert Settings(map_tiles="", map_labels="").map_tiles is None


@given(st.text(max_size=80), st.text(max_size=4))
def test_any_template_is_refused_in_words_or_gives_only_plain_origins(template: str, subdomains: str) -> None:
    try:
        found = origins(template, subdomains)
    except ValueError as refused:
        assert str(refused) and "\n" not in str(refused)
        return
    # what goes into the policy is one scheme, host and port each: nothing that could widen it
    assert found and all(ORIGIN.match(origin) for origin in found), found


DOMAIN = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z]{2,5}){1,2}", fullmatch=True)


@given(st.sampled_from(["http", "https"]), DOMAIN, st.none() | st.integers(1, 65535),
       st.sets(st.sampled_from("0123abc"), min_size=1, max_size=4), st.booleans())
def test_a_template_admits_its_own_hosts(scheme: str, domain: str, port: int | None, subdomains: set[str],
                                         in_host: bool) -> None:
    at = f":{port}" if port else ""
    host = f"t{{s}}.{domain}" if in_host else domain
    chars = "".join(sorted(subdomains))
    expected = [f"{scheme}://t{s}.{domain}{at}" for s in chars] if in_host else [f"{scheme}://{domain}{at}"]
    assert origins(f"{scheme}://{host}{at}/tiles/{{z}}/{{x}}/{{y}}.png?s={{s}}", chars) == expected


def test_the_pages_policy_admits_images_from_the_tile_hosts_only() -> None:
    settings = Settings(database_url="postgresql://127.0.0.1:1/none", map_tiles=AMAP, map_subdomains="1234",
                        map_crs="gcj02", map_attribution="© 高德地图")
    client = TestClient(create_app(settings))  # no lifespan: the pages need no database
    page = client.get("/console")
    images = re.search(r"img-src ([^;]*);", page.headers["content-security-policy"]).group(1).split()
    assert images == ["'self'", "data:", *(f"https://webrd0{n}.is.autonavi.com" for n in "1234")]
    assert 'data-basemap="{&quot;tiles&quot;: &quot;https://webrd0{s}.is.autonavi.com/appmaptile?' in page.text
    assert "&quot;crs&quot;: &quot;gcj02&quot;" in page.text and "© 高德地图" in page.text
    plain = TestClient(create_app(Settings(database_url="postgresql://127.0.0.1:1/none"))).get("/track/SO-1")
    assert "img-src 'self' data:;" in plain.headers["content-security-policy"]
    assert "&quot;tiles&quot;: null" in plain.text
