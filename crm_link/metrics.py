"""What the database says about the pipeline, for the CRM worker's /metrics: how far correlation is
behind, exceptions, dead letters, webhook deliveries and the gateways' last known state.

Read from the database at each scrape rather than counted in memory, so the numbers survive restarts
and are the same whichever worker is scraped."""

from __future__ import annotations

import psycopg

from common.metrics import Sample
from crm_link.correlate import oldest_unapplied_s

SOURCES = ("tag_observations", "positions")


def database_samples(conn: psycopg.Connection) -> list[Sample]:
    out: list[Sample] = []
    for table in SOURCES:
        lag = oldest_unapplied_s(conn, table)
        out.append(("cargotrace_crm_cursor_lag_seconds", {"source": table}, max(0.0, lag or 0.0)))
    for kind, opened, unresolved in conn.execute(
            "SELECT type, count(*), count(*) FILTER (WHERE state <> 'resolved') FROM exceptions GROUP BY type "
            "ORDER BY type").fetchall():
        out.append(("cargotrace_crm_exceptions_opened_total", {"type": kind}, opened))
        out.append(("cargotrace_crm_exceptions_unresolved", {"type": kind}, unresolved))
    out.append(("cargotrace_dead_letters_total", {}, conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]))
    out += [("cargotrace_webhook_deliveries", {"state": state}, n) for state, n in conn.execute(
        "SELECT state, count(*) FROM webhook_deliveries GROUP BY state ORDER BY state").fetchall()]
    out += [("cargotrace_gateway_state", {"gateway": gateway, "state": state}, 1.0) for gateway, state in conn.execute(
        "SELECT DISTINCT ON (gateway_id) gateway_id, state FROM gateway_states ORDER BY gateway_id, ts DESC, seq DESC"
    ).fetchall()]
    return out
