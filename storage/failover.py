"""A PostgreSQL primary with streaming standbys: what each host of a multi-host URL is, and promoting a
standby when the primary is gone (docs/scaling.md, "Database failover").

Writers connect with one libpq URL naming every host and `target_session_attrs=read-write`: libpq tries
the hosts in order and keeps the one that accepts writes, so after a promotion a writer's next
connection lands on the new primary without any change to its settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from common.failures import Failure, describe


class FailoverError(Failure):
    """The host cannot be promoted (not reachable, or not a standby)."""


@dataclass(frozen=True, slots=True)
class HostState:
    host: str
    role: str  # primary, standby or unreachable
    detail: str  # the standbys a primary streams to (sync state, bytes behind), a standby's replay, or the error


def hosts(url: str) -> list[str]:
    """The URL once per host it names (host:port), each without target_session_attrs."""
    params = conninfo_to_dict(url)
    names = str(params.pop("host", "") or "127.0.0.1").split(",")
    ports = str(params.pop("port", "") or "5432").split(",")
    params.pop("target_session_attrs", None)
    ports = ports * len(names) if len(ports) == 1 else ports
    return [make_conninfo(**params, host=h, port=p) for h, p in zip(names, ports, strict=True)]


def state(single_host_url: str) -> HostState:
    where = "{host}:{port}".format(**conninfo_to_dict(single_host_url))
    try:
        with psycopg.connect(single_host_url, connect_timeout=3, autocommit=True) as conn:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                replay = conn.execute("SELECT pg_last_wal_replay_lsn()::text, "
                                      "now() - pg_last_xact_replay_timestamp()").fetchone()
                return HostState(where, "standby", f"replayed up to {replay[0]}, last transaction {replay[1]} ago")
            standbys = conn.execute(
                "SELECT application_name, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint "
                "FROM pg_stat_replication ORDER BY application_name").fetchall()
    except psycopg.OperationalError as exc:
        return HostState(where, "unreachable", describe(exc) or str(exc))
    detail = ", ".join(f"{name} ({sync}, {behind} bytes behind)" for name, sync, behind in standbys)
    return HostState(where, "primary", f"streams to {detail}" if standbys else "no standby connected")


def promote(single_host_url: str, wait_s: int = 60, keep_synchronous: bool = False) -> str:
    """Make this standby the primary (pg_promote), waiting until it accepts writes; returns what was done.
    Only once the old primary is known dead or fenced: two primaries would each take writes the other
    never sees.

    A standby copied from a synchronous primary inherits its synchronous_standby_names; as the new
    primary, with no standby of its own yet, every commit would then wait forever. Unless told to keep
    it, the setting is cleared: commits go on with one copy until a new standby is attached."""
    where = "{host}:{port}".format(**conninfo_to_dict(single_host_url))
    try:
        with psycopg.connect(single_host_url, connect_timeout=5, autocommit=True) as conn:
            if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                raise FailoverError(f"{where} is already a primary: nothing to promote")
            if not conn.execute("SELECT pg_promote(true, %s)", (wait_s,)).fetchone()[0]:
                raise FailoverError(f"{where} did not finish promotion within {wait_s} s: see its server log")
            waits_for = conn.execute("SHOW synchronous_standby_names").fetchone()[0]
            if not waits_for or keep_synchronous:
                return f"{where} promoted"
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            conn.execute("SELECT pg_reload_conf()")
            return (f"{where} promoted; synchronous replication to {waits_for} switched off (it has no standby "
                    "yet): attach a new standby and set synchronous_standby_names again")
    except psycopg.OperationalError as exc:
        raise FailoverError(f"cannot reach {where}: {describe(exc) or exc}") from None
