"""The tracking API: customers see their own shipments, dispatchers the fleet, the CRM upserts demands."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlparse

import psycopg
from fastapi import FastAPI, Request
from psycopg_pool import ConnectionPool, PoolTimeout

from common.failures import OneLineErrors, describe
from common.metrics import serve
from common.settings import Settings
from tracking_api import pages, problems
from tracking_api.auth import KeyCache, RateLimit
from tracking_api.body_limit import BodyLimit
from tracking_api.deps import Admission, open_pool
from tracking_api.live import Live
from tracking_api.models import Health
from tracking_api.refusal import Refusal
from tracking_api.request_metrics import RequestMetrics, RequestStats
from tracking_api.routes import (
    customers,
    demands,
    docks,
    epcis,
    exceptions,
    feedback,
    master,
    shared,
    shipments,
    streams,
    vehicles,
    webhooks,
)

log = logging.getLogger(__name__)
POOL_LINES = OneLineErrors()
HEALTH_TIMEOUT_S = 3.0
LIVE_START_TIMEOUT_S = 5.0


def create_app(settings: Settings) -> FastAPI:
    logging.getLogger("psycopg.pool").addFilter(POOL_LINES)  # the same filter once, however many apps
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with ExitStack() as stack:
            app.state.pool = stack.enter_context(open_pool(settings, settings.api_database_url
                                                           or settings.database_url))
            app.state.read_pool = (stack.enter_context(open_pool(settings, settings.read_database_url))
                                   if settings.read_database_url else app.state.pool)
            app.state.live = Live(settings.api_database_url or settings.database_url or "", app.state.pool)
            app.state.live.start()
            stack.callback(app.state.live.close)
            # Listening before serving, so a client's first stream misses no change; bounded, so a
            # database that is down does not keep the API (and its /healthz) from starting.
            await asyncio.to_thread(app.state.live.listening.wait, LIVE_START_TIMEOUT_S)
            if settings.api_metrics_listen:
                server = serve(settings.api_metrics_listen, stats.samples, lambda: _database_answers(app.state.pool),
                               "CARGOTRACE_API_METRICS_LISTEN")
                stack.callback(server.shutdown)
            # uvicorn says "startup complete" regardless: say here that it is not ready, and why.
            problem = await asyncio.to_thread(_database_problem, settings.api_database_url or settings.database_url)
            if problem:
                log.warning("not ready: %s; /healthz answers 503 until the database answers", problem)
            yield

    # /docs is served by the pages from local files (tracking_api/pages.py); no ReDoc: its bundle comes
    # with a large npm dependency tree and Swagger UI shows the same document.
    app = FastAPI(title="cargotrace tracking API", version="1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  responses={"4XX": problems.documented("a problem with the request")},
                  description="Shipment status for customers, exceptions and fleet for dispatchers, demand upsert "
                              "for the CRM. Authenticate with `Authorization: Bearer <API key>`. Errors are RFC 9457 "
                              "problem details. Lists page with a cursor: pass `next_after` back as `after`.")
    app.state.settings = settings
    app.state.rate_limit = RateLimit(settings.api_rate_limit_per_minute)
    app.state.auth_failures = RateLimit(settings.api_auth_failures_per_minute, "problem.rate_address")
    app.state.key_cache = KeyCache(settings.api_key_cache_seconds)
    stats = RequestStats()
    # One connection stays free for the live-update reader and health checks.
    app.add_middleware(Admission, slots=settings.api_pool_size - 1)
    # Outside the admission: a slow body waits in the event loop, not in a slot (tracking_api/body_limit.py).
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes, timeout_s=settings.api_body_timeout_s)
    app.add_middleware(RequestMetrics, stats=stats)
    problems.install(app)
    for routes in (shipments, shared, feedback, epcis, streams, exceptions, vehicles, docks, demands, customers,
                   master, webhooks):
        app.include_router(routes.router)
    pages.mount(app)

    @app.get("/healthz", tags=["ops"], response_model=Health, response_model_exclude_none=True,
             responses={503: problems.documented("the database or the broker does not answer")})
    def healthz(request: Request) -> Any:
        if not _database_answers(request.app.state.pool):
            raise Refusal(503, "problem.database_down")
        if settings.mqtt_url and not _reachable(settings.mqtt_url):
            raise Refusal(503, "problem.broker_down")
        return {"status": "ok", "database": "ok", "live": request.app.state.live.listening.is_set(),
                **({"broker": "ok"} if settings.mqtt_url else {})}

    return app


def _database_answers(pool: ConnectionPool) -> bool:
    try:
        with pool.connection(timeout=HEALTH_TIMEOUT_S) as c:
            c.execute("SELECT 1")
    except (psycopg.Error, PoolTimeout):
        return False
    return True


def _database_problem(url: str | None) -> str | None:
    """Why the database does not answer, in one line (the pool's own error says only 'timeout')."""
    try:
        psycopg.connect(url or "", connect_timeout=HEALTH_TIMEOUT_S).close()
    except psycopg.OperationalError as exc:
        return describe(exc) or str(exc)
    return None


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 1883), timeout=HEALTH_TIMEOUT_S):
            return True
    except OSError:
        return False
