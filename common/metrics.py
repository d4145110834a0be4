"""The health and metrics endpoint of every long-running process (Prometheus text format).

Here because the gateway is the leftmost package that serves it; ingest, the CRM link and the API
serve theirs with the same code, each on its own listen address.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from common.failures import port_in_use

Sample = tuple[str, dict[str, str], float]  # name, labels, value


def _number(value: float) -> str:
    # Counters pass a million: "%g" would print 1.23457e+06 and lose the low digits.
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}.get(repr(value), repr(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(samples: list[Sample]) -> str:
    lines = []
    for name, labels, value in samples:
        label_text = ",".join(f'{k}="{_label(v)}"' for k, v in sorted(labels.items()))
        lines.append(f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def serve(listen: str, collect: Callable[[], list[Sample]], healthy: Callable[[], bool],
          setting: str = "its metrics listen address") -> ThreadingHTTPServer:
    """`setting` names what chose `listen`, for the line saying its port is taken."""
    host, port = listen.rsplit(":", 1)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                status, body, kind = 200, render(collect()), "text/plain; version=0.0.4"
            elif self.path == "/healthz":
                ok = healthy()
                status, body, kind = (200 if ok else 503), ("ok\n" if ok else "degraded\n"), "text/plain"
            else:
                status, body, kind = 404, "not found\n", "text/plain"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:  # scrapes every few seconds: not worth a log line
            pass

    try:
        server = ThreadingHTTPServer((host, int(port)), Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise port_in_use(port, setting) from exc
        raise
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
