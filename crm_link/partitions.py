"""Which partitions of the correlator's work (storage/vocabulary.py PARTITIONS) this process applies.

Several `cargotrace crm run` processes share them through PostgreSQL session advisory locks: each
process is a member (a lock of its own) and holds about an equal share of the partition locks. A
process that dies loses its locks with its connection, so the others take its partitions on their
next pass; one that joins gets its share as the others give back what they hold beyond theirs.
The correlator moves a partition's cursor only while holding its lock, so a partition is never
applied by two processes at once.
"""

from __future__ import annotations

import math

import psycopg

from storage.vocabulary import PARTITIONS

# Advisory lock key spaces (the first of the two int4 keys): the partitions, and the members.
PARTITION_LOCKS = 0x63747201
MEMBER_LOCKS = 0x63747202


class Claims:
    """This process's share of the partitions, over one connection (a new connection starts afresh)."""

    def __init__(self) -> None:
        self.held: set[int] = set()
        self._backend: int | None = None

    def rebalance(self, conn: psycopg.Connection) -> frozenset[int]:
        """Give back partitions beyond this process's share and take free ones up to it; call between
        batches (locks given back mid-batch would let another process apply the same rows)."""
        with conn.transaction():
            if conn.info.backend_pid != self._backend:
                self.held.clear()
                conn.execute("SELECT pg_advisory_lock(%s, pg_backend_pid())", (MEMBER_LOCKS,))
                self._backend = conn.info.backend_pid
            (members,) = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s::oid "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (MEMBER_LOCKS,)).fetchone()
            share = math.ceil(PARTITIONS / max(members, 1))
            for partition in sorted(self.held, reverse=True)[:max(len(self.held) - share, 0)]:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (PARTITION_LOCKS, partition))
                self.held.discard(partition)
            # Start from a place of this backend's own, so joining processes do not all race for partition 0.
            first = self._backend % PARTITIONS
            for partition in (*range(first, PARTITIONS), *range(first)):
                if len(self.held) >= share:
                    break
                if partition not in self.held and conn.execute(
                        "SELECT pg_try_advisory_lock(%s, %s)", (PARTITION_LOCKS, partition)).fetchone()[0]:
                    self.held.add(partition)
        return frozenset(self.held)
