"""What a streaming standby costs the writers: ingest's write path (binary COPY + idempotent insert, one
commit per batch) on a primary whose standby is asynchronous or synchronous, next door or 50 ms away.

    python -m bench.replication [--rows 200000]

Each configuration writes the same rows into an empty `positions` in batches of 2 000 rows (ingest's
batch under load) and of 100 rows (one message: a quiet stream commits that often). Prints rows/s and
the ratio to the asynchronous standby next door, measured in the same run. Needs Debian's
postgresql-15 binaries and root (the servers run as the postgres user).
"""

from __future__ import annotations

import argparse

import psycopg
from psycopg import sql

from bench.ingest import floor_copy
from storage.migrate import migrate
from tests.postgres_pair import STANDBY_NAME, Pair

BATCHES = (2000, 100)


def measure(pair: Pair, rows: int, synchronous: bool) -> dict[int, float]:
    with psycopg.connect(pair.primary.url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(
            sql.Literal(STANDBY_NAME if synchronous else "")))
        conn.execute("SELECT pg_reload_conf()")
    speeds = {}
    for batch_rows in BATCHES:
        with psycopg.connect(pair.primary.url, autocommit=True) as conn:
            conn.execute("TRUNCATE positions")
        speeds[batch_rows] = floor_copy(pair.primary.url, rows, batch_rows)
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    results: dict[str, dict[int, float]] = {}
    for delay_ms in (0, 50):
        pair = Pair(synchronous=False, link_delay_s=delay_ms / 1000)
        try:
            migrate(pair.primary.url)
            for synchronous in (False, True):
                name = f"{'synchronous' if synchronous else 'asynchronous'} standby, {delay_ms} ms away"
                results[name] = measure(pair, args.rows, synchronous)
                print(f"{name}: " + ", ".join(f"{v:,.0f} rows/s in batches of {k}" for k, v in results[name].items()),
                      flush=True)
        finally:
            pair.stop()
    base = results["asynchronous standby, 0 ms away"]
    print("\n| standby | " + " | ".join(f"rows/s, batches of {b} (× async next door)" for b in BATCHES) + " |")
    print("|---|" + "---|" * len(BATCHES))
    for name, speeds in results.items():
        print(f"| {name} | " + " | ".join(f"{speeds[b]:,.0f} ({speeds[b] / base[b]:.2f}×)" for b in BATCHES) + " |")


if __name__ == "__main__":
    main()
