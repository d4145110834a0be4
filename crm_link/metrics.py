"""What the database says about the pipeline, for the CRM worker's /metrics: how far correlation is
behind, exceptions, dead letters, webhook deliveries and the gateways' last known state.

Read from the database at each scrape rather than counted in memory, so the numbers survive restarts
and are the same whichever worker is scraped."""

from __future__ import annotations

import psycopg

from common.metrics import Sample
from crm_link.correlate import cursors
from storage.vocabulary import PARTITION_KEY

SOURCES = ("tag_observations", "positions")


def database_samples(conn: psycopg.Connection) -> list[Sample]:
    out: list[Sample] = []
    for table in SOURCES:
        stood = {name: (txid, i) for name, txid, i in conn.execute(
            "SELECT consumer, txid::text, id FROM consumer_cursors WHERE consumer = ANY(%s)", (cursors(table),))}
        at = [stood.get(name, ("0", 0)) for name in cursors(table)]
        start = min(at, key=lambda c: (int(c[0]), c[1]))
        # The oldest row not yet consumed by its partition's cursor, by the cursors' index from the one
        # furthest behind (the partitions move together but for the moments after a takeover).
        lag = conn.execute(
            f"SELECT extract(epoch FROM now() - received_at)::float8 FROM {table} "
            f"JOIN unnest(%s::int[], %s::text[], %s::bigint[]) AS c (part, at_txid, at_id) "
            f"ON c.part = cargotrace_partition({PARTITION_KEY[table]}) AND (txid, id) > (c.at_txid::xid8, c.at_id) "
            "WHERE (txid, id) > (%s::xid8, %s) ORDER BY txid, id LIMIT 1",
            (list(range(len(at))), [str(c[0]) for c in at], [c[1] for c in at], str(start[0]), start[1])).fetchone()
        out.append(("cargotrace_crm_cursor_lag_seconds", {"source": table}, max(0.0, lag[0]) if lag else 0.0))
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
