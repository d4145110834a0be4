"""Bearer API keys → a Principal; role checks and per-key rate limits as FastAPI dependencies."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from tracking_api.keys import Principal, authenticate
from tracking_api.refusal import Refusal

_bearer = HTTPBearer(auto_error=False)


class RateLimit:
    """Events per minute per key (an API key, a client address), counted in this API process (N replicas
    allow N times as many)."""

    def __init__(self, per_minute: int, refusal: str = "problem.rate_key") -> None:
        self.item = RateLimitItemPerMinute(per_minute) if per_minute > 0 else None
        self.limiter = FixedWindowRateLimiter(MemoryStorage())
        self.refusal = refusal

    def check(self, key: str) -> None:
        """Count one event; 429 past the limit."""
        if self.item is not None and not self.limiter.hit(self.item, key):
            self.refuse(key)

    def hold(self, key: str) -> None:
        """429 while the limit is passed, without counting."""
        if self.item is not None and not self.limiter.test(self.item, key):
            self.refuse(key)

    def refuse(self, key: str) -> None:
        assert self.item is not None
        reset = self.limiter.get_window_stats(self.item, key).reset_time
        raise Refusal(429, self.refusal, headers={"Retry-After": str(max(1, int(reset - time.time())))})


class KeyCache:
    """Keys verified in the last `seconds`, so a busy client costs one lookup per period, not one per
    request. Entries are keyed by a hash of the whole key (the secret never sits in memory as a key),
    and only successes are kept: a revoked or expired key stops working within `seconds`."""

    MAX_ENTRIES = 10_000

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.entries: dict[bytes, tuple[Principal, float]] = {}
        self.lock = threading.Lock()

    def get(self, key: str, lookup: Callable[[], Principal | None]) -> Principal | None:
        if self.seconds <= 0:
            return lookup()
        digest, now = hashlib.sha256(key.encode()).digest(), time.monotonic()
        with self.lock:
            cached = self.entries.get(digest)
        if cached and cached[1] > now:
            return cached[0]
        found = lookup()
        if found is not None:
            with self.lock:
                if len(self.entries) >= self.MAX_ENTRIES:
                    self.entries.clear()
                self.entries[digest] = (found, now + self.seconds)
        return found


def client_address(request: Request) -> str:
    """The client's address (a trusted proxy's X-Forwarded-For, as uvicorn resolves it)."""
    return request.client.host if request.client else "unknown"


def principal(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    if credentials is None:
        raise Refusal(401, "problem.key_required")

    address = client_address(request)

    def lookup() -> Principal | None:
        request.app.state.auth_failures.hold(address)  # guessing from here: no more lookups for a while
        with request.app.state.pool.connection() as conn:
            return authenticate(conn, credentials.credentials)

    found = request.app.state.key_cache.get(credentials.credentials, lookup)
    if found is None:
        request.app.state.auth_failures.check(address)
        raise Refusal(401, "problem.key_refused")
    request.app.state.rate_limit.check(found.prefix)
    return found


def require(*roles: str) -> Callable[[Principal], Principal]:
    def check(who: Principal = Depends(principal)) -> Principal:
        if who.role not in roles:
            raise Refusal(403, "problem.role", roles=", ".join(roles))
        return who

    return check


# Who reads shipments, their trails and share links: customers (their own) and the staff who name one.
shipment_reader = require("customer", "dispatcher", "admin")


def owner(who: Principal, customer_id: str | None) -> str:
    """The customer a request is about: customers see their own; staff name the customer."""
    if who.role == "customer":
        return who.customer_id or ""
    if not customer_id:
        raise Refusal(422, "problem.customer_required")
    return customer_id
