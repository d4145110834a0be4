"""The web pages: the dispatcher console, the customer's tracking page and share-link pages.

The pages hold no data: they call the API like any client. Their own files are in tracking_api/web;
Leaflet, and Swagger UI for the API's documentation at /docs, come from npm (`npm ci --prefix
tracking_api/web`) and are served from there, so nothing is loaded from another host — a closed
network gets every page whole; the Content-Security-Policy says so to the browser too. The one
exception is a configured base map (CARGOTRACE_MAP_TILES): its tile hosts, and only those, may serve
images. The pages learn the base map from their map element's `data-basemap` (JSON), written here:
the policy forbids inline scripts.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from common import basemap
from common.settings import Settings

WEB = Path(__file__).resolve().parent / "web"
LEAFLET = WEB / "node_modules" / "leaflet" / "dist"
SWAGGER_UI = WEB / "node_modules" / "swagger-ui-dist"
CSP = ("default-src 'self'; img-src 'self' data:{tiles}; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
       "frame-ancestors 'none'")
BASEMAP = 'data-basemap="{}"'  # where a page's map element takes the configuration

router = APIRouter(include_in_schema=False)


def policy(settings: Settings) -> str:
    hosts = [origin for template in (settings.map_tiles, settings.map_labels) if template
             for origin in basemap.origins(template, settings.map_subdomains)]
    return CSP.format(tiles="".join(f" {origin}" for origin in dict.fromkeys(hosts)))


def configured(page: str, settings: Settings) -> str:
    """The page's HTML with the base map's configuration in its map element."""
    config = {"tiles": settings.map_tiles, "labels": settings.map_labels, "subdomains": settings.map_subdomains,
              "attribution": settings.map_attribution, "crs": settings.map_crs}
    return page.replace(BASEMAP, f'data-basemap="{html.escape(json.dumps(config, ensure_ascii=False), quote=True)}"')


def _page(request: Request, name: str) -> HTMLResponse:
    settings = request.app.state.settings
    return HTMLResponse(configured((WEB / name).read_text(), settings),
                        headers={"Content-Security-Policy": policy(settings), "Referrer-Policy": "no-referrer",
                                 "Cache-Control": "no-cache"})


@router.get("/console")
def console(request: Request) -> Any:
    return _page(request, "console.html")


@router.get("/track/{external_ref}")
def track(request: Request, external_ref: str) -> Any:
    return _page(request, "track.html")


@router.get("/docs")
def docs() -> HTMLResponse:
    """Swagger UI from this server, not from a CDN (FastAPI's default), which a closed network lacks."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="cargotrace API",
                               swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
                               swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
                               swagger_favicon_url="/vendor/swagger-ui/favicon-32x32.png")


@router.get("/s/{token}")
def shared(request: Request, token: str) -> Any:
    # no-referrer above: the token in this page's address never leaks to another site (a tile host either)
    return _page(request, "track.html")


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    # check_dir=False: without `npm ci` the pages still work, only the map is missing
    app.mount("/vendor/leaflet", StaticFiles(directory=LEAFLET, check_dir=False), name="leaflet")
    app.mount("/vendor/swagger-ui", StaticFiles(directory=SWAGGER_UI, check_dir=False), name="swagger-ui")
