"""The web pages: the dispatcher console, the customer's tracking page and share-link pages.

The pages hold no data: they call the API like any client. Their own files are in tracking_api/web;
Leaflet, and Swagger UI for the API's documentation at /docs, come from npm (`npm ci --prefix
tracking_api/web`) and are served from there, so nothing is loaded from another host — a closed
network gets every page whole; the Content-Security-Policy says so to the browser too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

WEB = Path(__file__).resolve().parent / "web"
LEAFLET = WEB / "node_modules" / "leaflet" / "dist"
SWAGGER_UI = WEB / "node_modules" / "swagger-ui-dist"
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
       "frame-ancestors 'none'")

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(WEB / name, headers={"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer",
                                             "Cache-Control": "no-cache"})


@router.get("/console")
def console() -> Any:
    return _page("console.html")


@router.get("/track/{external_ref}")
def track(external_ref: str) -> Any:
    return _page("track.html")


@router.get("/docs")
def docs() -> HTMLResponse:
    """Swagger UI from this server, not from a CDN (FastAPI's default), which a closed network lacks."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="cargotrace API",
                               swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
                               swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
                               swagger_favicon_url="/vendor/swagger-ui/favicon-32x32.png")


@router.get("/s/{token}")
def shared(token: str) -> Any:
    # no-referrer above: the token in this page's address never leaks to another site
    return _page("track.html")


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    # check_dir=False: without `npm ci` the pages still work, only the map is missing
    app.mount("/vendor/leaflet", StaticFiles(directory=LEAFLET, check_dir=False), name="leaflet")
    app.mount("/vendor/swagger-ui", StaticFiles(directory=SWAGGER_UI, check_dir=False), name="swagger-ui")
