"""Restoring a `pg_dump --format=custom` into an empty database, of this cluster or a new one.

A dump holds a database, not the cluster around it: the API's role (`cargotrace_api`, migration 0004)
and the membership that lets the service switch to it are created first, and the roles owning the
dump's objects must exist. Transaction ids are the cluster's own: the `txid` column, by which the
correlator reads rows in commit order, comes back with the old cluster's ids, which a new cluster's
are far behind — new rows would sort before the correlator's cursor and never be read. So each
cursor of the correlator's partitions is re-derived: rows it had consumed get txid 1, the rest txid 2,
the cursor sits after the consumed ones, and every new transaction's id is larger; the speed history's
cursor over `positions` is set where the correlator's stand.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg

from storage.vocabulary import PARTITION_KEY, PARTITIONS, PROFILE_CURSOR, correlator_cursor

CONSUMED, PENDING = "1", "2"

_ROLES = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cargotrace_api') THEN
        CREATE ROLE cargotrace_api NOLOGIN NOBYPASSRLS;
    END IF;
END $$;
"""


class RestoreError(Exception):
    """The restore cannot go on; the message says why and what to do."""


def owners(dump: Path) -> set[str]:
    """The roles owning the dump's objects (the last field of each entry of its table of contents)."""
    listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True)
    if listing.returncode != 0:
        raise RestoreError(f"{dump} is not a pg_dump archive: {listing.stderr.strip().splitlines()[-1:]}")
    return {line.rsplit(" ", 1)[-1] for line in listing.stdout.splitlines()
            if re.match(r"^\d+; \d+ \d+ (TABLE|SEQUENCE|FUNCTION|SCHEMA|VIEW) ", line)}


def restore(database_url: str, dump: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0] is not None:
            raise RestoreError("the database is not empty: restore into a new, empty database")
        missing = sorted(role for role in owners(dump)
                         if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None)
        if missing:
            raise RestoreError(f"the dump's objects belong to the role {', '.join(missing)}, which this cluster "
                               f"lacks: create it (CREATE ROLE name LOGIN) and restore as it")
        conn.execute(_ROLES)
        conn.execute("GRANT cargotrace_api TO current_user")
        timescale = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
        if timescale:  # Timescale's own restore mode around pg_restore
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute("SELECT timescaledb_pre_restore()")
    done = subprocess.run(["pg_restore", "--exit-on-error", "--single-transaction", f"--dbname={database_url}",
                           str(dump)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RestoreError(f"pg_restore failed: {done.stderr.strip().splitlines()[-1:]}")
    with psycopg.connect(database_url) as conn:
        if timescale:
            conn.execute("SELECT timescaledb_post_restore()")
        for table in PARTITION_KEY:
            rederive_cursors(conn, table)
        # The speed history's fold resumes where the correlator stood: the two are at most a fold
        # (a minute) apart, the fixes between are left out of the profile or counted twice there.
        conn.execute("UPDATE consumer_cursors SET txid = %s::xid8, "
                     "id = (SELECT coalesce(max(id), 0) FROM positions WHERE txid = %s::xid8) WHERE consumer = %s",
                     (CONSUMED, CONSUMED, PROFILE_CURSOR))
        conn.commit()


def rederive_cursors(conn: psycopg.Connection, table: str) -> None:
    """Rows a partition's cursor had passed: txid 1; the others: txid 2; each cursor after its partition's
    first kind."""
    names = [correlator_cursor(table, p) for p in range(PARTITIONS)]
    stood = {name: (txid, i) for name, txid, i in conn.execute(
        "SELECT consumer, txid::text, id FROM consumer_cursors WHERE consumer = ANY(%s)", (names,))}
    at = [stood.get(name, ("0", 0)) for name in names]
    conn.execute(f"UPDATE {table} t SET txid = CASE WHEN (t.txid, t.id) <= (c.at_txid::xid8, c.at_id) "
                 "THEN %s::xid8 ELSE %s::xid8 END "
                 "FROM unnest(%s::int[], %s::text[], %s::bigint[]) AS c (part, at_txid, at_id) "
                 f"WHERE c.part = cargotrace_partition({PARTITION_KEY[table]})",
                 (CONSUMED, PENDING, list(range(PARTITIONS)), [c[0] for c in at], [c[1] for c in at]))
    consumed_up_to = dict(conn.execute(
        f"SELECT cargotrace_partition({PARTITION_KEY[table]}), max(id) FROM {table} WHERE txid = %s::xid8 "
        "GROUP BY 1", (CONSUMED,)).fetchall())
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO consumer_cursors (consumer, txid, id) VALUES (%s, %s::xid8, %s) "
                        "ON CONFLICT (consumer) DO UPDATE SET txid = excluded.txid, id = excluded.id",
                        [(name, CONSUMED, consumed_up_to.get(p, 0)) for p, name in enumerate(names)])
