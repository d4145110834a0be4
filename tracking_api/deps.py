"""Per-request database access under the caller's tenant (row-level security, migration 0004).

Every request's transaction starts with `set_config(..., true)` (SET LOCAL) of the caller's role and
customer, so the database itself filters customer-owned rows, and the setting ends with the
transaction: a pooled connection never carries one request's tenant into the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from fastapi import Depends, Request
from psycopg_pool import ConnectionPool

from common.settings import Settings
from tracking_api import share
from tracking_api.auth import client_address, principal
from tracking_api.keys import Principal
from tracking_api.params import Token
from tracking_api.refusal import Refusal

API_ROLE = "cargotrace_api"
_TENANT = "SELECT set_config('cargotrace.role', %s, true), set_config('cargotrace.customer_id', %s, true)"


def _as_api_role(conn: psycopg.Connection) -> None:
    conn.execute(f"SET ROLE {API_ROLE}")
    conn.commit()


def open_pool(settings: Settings, url: str | None) -> ConnectionPool:
    """A pool whose sessions are subject to row-level security: the API's own login role, or the
    service URL switched to `cargotrace_api` for the whole session."""
    return ConnectionPool(url, min_size=1, max_size=settings.api_pool_size,  # type: ignore[arg-type]
                          configure=None if settings.api_database_url else _as_api_role, open=True)


@contextmanager
def tenant(pool: ConnectionPool, who: Principal) -> Iterator[psycopg.Connection]:
    with pool.connection() as conn, conn.transaction():
        conn.execute(_TENANT, (who.role, who.customer_id or ""))
        yield conn


def db(request: Request, who: Principal = Depends(principal)) -> Iterator[psycopg.Connection]:
    """The primary, for writes and reads that must see them."""
    with tenant(request.app.state.pool, who) as conn:
        yield conn


def db_read(request: Request, who: Principal = Depends(principal)) -> Iterator[psycopg.Connection]:
    """The read replica when one is configured (may lag the primary by its replication delay)."""
    with tenant(request.app.state.read_pool, who) as conn:
        yield conn


def shared(request: Request, token: Token) -> Principal:
    """A share link's token is the credential: read-only, one shipment (request.state.shared_ref),
    until it expires."""
    request.app.state.rate_limit.check("share:" + token[:24])
    address = client_address(request)
    request.app.state.auth_failures.hold(address)
    with request.app.state.pool.connection() as c:
        try:
            link = share.verify(c, token)
        except share.ExpiredToken:
            raise Refusal(410, "problem.share_expired") from None
        except share.InvalidToken:
            request.app.state.auth_failures.check(address)
            raise Refusal(404, "problem.no_such.share_link") from None
        (language,) = c.execute("SELECT cargotrace_customer_language(%s)", (link.customer_id,)).fetchone()
    request.state.shared_ref = link.external_ref
    return Principal("customer", link.customer_id, "share", language)


class Admission:
    """ASGI middleware: at most `slots` requests at a time past this point, waiting in the event loop.

    Sync endpoints and their dependencies run on a bounded thread pool and take pooled database
    connections there. Unbounded, every thread can end up waiting for a connection while the requests
    holding the connections wait for a thread to finish on: a deadlock until the pool times out. With
    fewer requests admitted than there are connections, a connection is always free. Live streams are
    not admitted here: they hold no connection while they stream.
    """

    def __init__(self, app: Any, slots: int) -> None:
        self.app, self.slots = app, asyncio.Semaphore(max(1, slots))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].endswith("/stream"):
            await self.app(scope, receive, send)
            return
        async with self.slots:
            await self.app(scope, receive, send)
