"""Request counts by route and status and a latency histogram, for the API's /metrics.

Served by the shared metrics server on `api_metrics_listen`, apart from the public port. Latency is
time to the response's first byte: a live stream is open for hours, its start is what clients wait for.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from typing import Any

from common.metrics import Sample

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Scope = dict[str, Any]


class RequestStats:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # scraped from the metrics server's thread
        self.requests: Counter[tuple[str, str, str]] = Counter()  # (method, route, status)
        self.buckets: dict[tuple[str, str], list[int]] = {}  # (method, route) -> count per bucket, +Inf last
        self.sums: Counter[tuple[str, str]] = Counter()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[method, route, str(status)] += 1
            counts = self.buckets.setdefault((method, route), [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[method, route] += seconds

    def samples(self) -> list[Sample]:
        a = "cargotrace_api_"
        with self.lock:
            out: list[Sample] = [(a + "requests_total", {"method": m, "route": r, "status": s}, n)
                                 for (m, r, s), n in sorted(self.requests.items())]
            for (m, r), counts in sorted(self.buckets.items()):
                total = 0
                for bound, n in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
                    total += n
                    out.append((a + "request_duration_seconds_bucket", {"method": m, "route": r, "le": bound}, total))
                out.append((a + "request_duration_seconds_sum", {"method": m, "route": r}, self.sums[m, r]))
                out.append((a + "request_duration_seconds_count", {"method": m, "route": r}, total))
        return out


class RequestMetrics:
    """ASGI middleware (not BaseHTTPMiddleware, which would buffer live streams)."""

    def __init__(self, app: Any, stats: RequestStats) -> None:
        self.app, self.stats = app, stats

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        started = False

        async def timed_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                self.stats.observe(scope["method"], _route(scope), message["status"], time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if not started:  # failed before answering: the server answers 500
                self.stats.observe(scope["method"], _route(scope), 500, time.perf_counter() - start)


def _route(scope: Scope) -> str:
    """The route's template (/v1/shipments/{ref}), never the raw path: ids would explode the label set."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
