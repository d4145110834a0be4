"""Writes batches of validated rows: binary COPY into staging, then an idempotent insert, one transaction.

`(gateway_id, seq, ts)` is unique in every time-series table, so a redelivered or replayed message
changes nothing. After the commit, listeners on `cargotrace_events` learn which vehicles and read
points moved. A message the database refuses for its content becomes a dead letter instead of
blocking the stream: redelivering it could never succeed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from typing import NamedTuple

import psycopg

from common.contract import TOPIC_ROOT
from ingest.validate import Rows
from storage.vocabulary import EVENTS_CHANNEL

log = logging.getLogger(__name__)
# Refusals caused by what a message holds, not by the database being away: the database's, and the
# binary COPY's own when a value does not fit its column's type (a float for an integer, say).
_CONTENT_ERRORS = (psycopg.DataError, psycopg.IntegrityError, UnicodeError, TypeError, ValueError, OverflowError)
_MAX_NOTIFY = 7900  # PostgreSQL's payload limit is 8000 bytes

_OBS_COLS = "gateway_id, seq, ts, epc, epc_uri, read_point, reader, antenna, rssi_dbm, reads, first_seen, direction"
_OBS_TYPES = ["text", "int8", "timestamptz", "text", "text", "text", "text", "int4", "float4", "int4",
              "timestamptz", "text"]
_POS_COLS = "gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh, course_deg, hdop, sats, quality, alt_m, alarms"
_POS_TYPES = ["text", "int8", "timestamptz", "text", "float8", "float8", "float4", "float4", "float4", "int2",
              "int2", "float4", "text[]"]

_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS stage_observations ON COMMIT DELETE ROWS AS
    SELECT {_OBS_COLS} FROM tag_observations WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS stage_positions ON COMMIT DELETE ROWS AS
    SELECT {_POS_COLS} FROM positions WITH NO DATA;
"""


class Accepted(NamedTuple):
    topic: str
    payload: bytes
    rows: Rows


class Dead(NamedTuple):
    topic: str
    payload: bytes
    reason: str
    retained: bool = False  # a retained message comes with every new subscription: its dead letter is written once


@dataclass
class Batch:
    accepted: list[Accepted] = field(default_factory=list)
    dead: list[tuple[str, bytes, str] | Dead] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.accepted) + len(self.dead)


@dataclass
class Written:
    observations: int = 0
    positions: int = 0
    states: int = 0
    dead_letters: int = 0
    unstorable: int = 0  # accepted by validation, refused by the database, now dead letters
    conflicts: int = 0  # events whose (gateway, seq, ts) was stored before with other content

    def __iadd__(self, other: Written) -> Written:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


class Writer:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        conn.execute(_STAGING)
        conn.commit()

    def write(self, batch: Batch) -> Written:
        """Commits the batch; connection errors propagate (retry the batch), content errors don't."""
        try:
            return self._write(batch)
        except _CONTENT_ERRORS as exc:
            log.warning("database refused a batch (%s); writing its messages one by one", exc)
            return self._isolate(batch)

    def _isolate(self, batch: Batch) -> Written:
        """One transaction per message, so only the refused ones become dead letters."""
        out = Written()
        dead = list(batch.dead)
        for item in batch.accepted:
            try:
                out += self._write(Batch(accepted=[item]))
            except _CONTENT_ERRORS as exc:
                dead.append((item.topic, item.payload, f"unstorable: {exc}"))
                out.unstorable += 1
        out += self._write(Batch(dead=dead))
        return out

    def _write(self, batch: Batch) -> Written:
        out = Written()
        observations = [r for item in batch.accepted for r in item.rows.observations]
        positions = [r for item in batch.accepted for r in item.rows.positions]
        states = [r for item in batch.accepted for r in item.rows.states]
        dead = [Dead(*d) for d in batch.dead]
        dead += [Dead(item.topic, event, reason) for item in batch.accepted for event, reason in item.rows.quarantined]
        with self.conn.transaction(), self.conn.cursor() as cur:
            if observations:
                out.observations, conflicts = self._copy_insert(cur, "tag_observations", "stage_observations",
                                                                _OBS_COLS, _OBS_TYPES, observations, "rfid")
                dead += conflicts
            if positions:
                out.positions, conflicts = self._copy_insert(cur, "positions", "stage_positions", _POS_COLS,
                                                             _POS_TYPES, positions, "gps")
                dead += conflicts
            out.conflicts = sum(d.reason.startswith("conflicting duplicate") for d in dead)
            if states:
                cur.executemany("INSERT INTO gateway_states (gateway_id, seq, ts, state, payload) "
                                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", states)
                out.states = len(states)
            if dead:
                cur.executemany("INSERT INTO dead_letters (topic, payload, reason, retained_digest) "
                                "VALUES (%s, %s, %s, CASE WHEN %s THEN sha256(%s) END) "
                                "ON CONFLICT (topic, retained_digest) WHERE retained_digest IS NOT NULL DO NOTHING",
                                [(d.topic, d.payload, _safe_reason(d.reason), d.retained, d.payload) for d in dead])
                out.dead_letters = len(dead)
            if out.observations or out.positions:
                cur.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, _notice(batch)))
        return out

    @staticmethod
    def _copy_insert(cur: psycopg.Cursor, table: str, stage: str, cols: str, types: list[str],
                     rows: list[tuple], kind: str) -> tuple[int, list[Dead]]:
        """Rows inserted, and dead letters for those whose key was stored before with other content (a
        redelivery or replay is the same content: nothing to say)."""
        with cur.copy(f"COPY {stage} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT DO NOTHING")
        inserted = cur.rowcount
        if inserted == len(rows):
            return inserted, []
        content = [c for c in cols.split(", ") if c not in ("gateway_id", "seq", "ts")]
        cur.execute(f"SELECT s.gateway_id, s.seq, s.ts, row_to_json(s)::text FROM {stage} s "
                    f"JOIN {table} t USING (gateway_id, seq, ts) "
                    f"WHERE ({', '.join('s.' + c for c in content)}) IS DISTINCT FROM "
                    f"({', '.join('t.' + c for c in content)})")
        return inserted, [Dead(f"{TOPIC_ROOT}/{gateway}/{kind}", event.encode(), f"conflicting duplicate: seq {seq} at "
                               f"{ts.isoformat()} was stored before with other content; the first is kept")
                          for gateway, seq, ts, event in cur.fetchall()]


def _safe_reason(text: str) -> str:
    """A reason quotes the message it rejects, which may hold exactly what text columns refuse."""
    return text.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")[:1000]


def _notice(batch: Batch) -> str:
    vehicles = sorted({v for item in batch.accepted for v in item.rows.vehicles})
    read_points = sorted({p for item in batch.accepted for p in item.rows.read_points})
    text = json.dumps({"vehicles": vehicles, "read_points": read_points}, separators=(",", ":"))
    return text if len(text) <= _MAX_NOTIFY else '{"vehicles":"*","read_points":"*"}'
