"""The speed profile: new fixes in `positions`, in commit order, folded into how fast each grid cell is
passed by hour of the week (table speed_profile, migration 0012).

A pair of consecutive fixes of a vehicle at most MAX_GAP_S apart is one stretch of driving, counted in
the cell of its midpoint at the hour it began. Pairs slower than STILL_KMH are a stop; a stop is held
back until it ends, then counted where it began if it was short (a red light, a queue: part of how
long the place takes) and left out if it lasted DWELL_S or more (parking, loading, a rest: not traffic).
Each vehicle's last fix and any stop in progress are kept (speed_profile_tails) so the next fold pairs
across the boundary; folding fixes in one pass or in many gives the same profile.

Each fold reads every fix committed below the horizon of running transactions (the correlator's)
and not folded yet, and moves a durable cursor past them in the same transaction as the sums. A few
are read through the (txid, id) index; a large backlog (the first build over months of fixes) in
block ranges of the table, each range read while the one before is folded. A fix committed after its
vehicle's later fixes were folded is left out (it would pair backwards).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import psycopg
from psycopg.conninfo import make_conninfo

from crm_link.correlate import HORIZON
from crm_link.grid import ANY_HOUR, BUCKET_KMH, BUCKETS, Floats, Ints, cells, hours_of_week, metres
from storage.vocabulary import PROFILE_CURSOR

MAX_GAP_S = 120.0
STILL_KMH = 5.0  # GPS jitter of a parked vehicle stays below this
DWELL_S = 300.0  # the stop threshold of unplanned_stop: longer is not traffic


@dataclass(frozen=True, slots=True)
class Stop:
    """A stop in progress: where and when it began, and the pairs it has lasted so far."""

    since: float
    cell: int
    hour: int
    pairs: int
    metres: float
    seconds: float


@dataclass(frozen=True, slots=True)
class Tail:
    ts: float  # epoch seconds
    lat: float
    lon: float
    stop: Stop | None = None


@dataclass(frozen=True, slots=True)
class Sums:
    """Pairs folded, summed per (cell, hour of week, ANY_HOUR included); counts is one row of BUCKETS a key."""

    cell: Ints
    hour: Ints
    pairs: Ints
    metres: Floats
    seconds: Floats
    counts: Ints

    @classmethod
    def of(cls, cell: Ints, hour: Ints, pairs: Floats, metres_: Floats, seconds: Floats, bucket: Ints) -> Sums:
        """Add up contributions (each in one speed bucket) by (cell, hour), then per cell over every hour."""
        keys, at = np.unique(cell * 256 + hour, return_inverse=True)  # hours < 256: one int64 key
        n = len(keys)
        counts = np.bincount(at * BUCKETS + bucket, weights=pairs, minlength=n * BUCKETS).reshape(n, BUCKETS)
        hourly = cls(keys // 256, keys % 256, np.bincount(at, weights=pairs, minlength=n).astype(np.int64),
                     np.bincount(at, weights=metres_, minlength=n), np.bincount(at, weights=seconds, minlength=n),
                     counts.astype(np.int64))
        every = cls._summed(hourly.cell, np.full(n, ANY_HOUR), hourly)
        return cls.merge([hourly, every])

    @classmethod
    def merge(cls, parts: list[Sums]) -> Sums:
        """Several sums as one (keys that recur added up)."""
        joined = cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__slots__))
        return cls._summed(joined.cell, joined.hour, joined)

    @classmethod
    def _summed(cls, cell: Ints, hour: Ints, rows: Sums) -> Sums:
        if len(cell) == 0:
            return rows
        keys = cell * 256 + hour
        order = np.argsort(keys, kind="stable")
        starts = np.r_[0, np.nonzero(np.diff(keys[order]))[0] + 1].astype(np.int64)
        first = keys[order][starts]
        return cls(first // 256, first % 256, *(np.add.reduceat(getattr(rows, f)[order], starts, axis=0)
                                                for f in ("pairs", "metres", "seconds", "counts")))


def fold(vehicles: Ints, t: Floats, lat: Floats, lon: Floats,
         tails: dict[int, Tail]) -> tuple[Sums, dict[int, Tail]]:
    """Fold fixes (in any order) of vehicles (by key) with these tails: the sums to add, and the new tails."""
    keys, code = np.unique(vehicles, return_inverse=True)
    names = keys.tolist()
    known = np.array([i for i, name in enumerate(names) if name in tails], dtype=np.int64)
    after = np.full(len(names), -np.inf)
    after[known] = [tails[names[i]].ts for i in known]
    new = t > after[code]  # a fix not after its vehicle's folded ones would pair backwards
    code = np.r_[known, code[new]]
    t = np.r_[[tails[names[i]].ts for i in known], t[new]]
    lat = np.r_[[tails[names[i]].lat for i in known], lat[new]]
    lon = np.r_[[tails[names[i]].lon for i in known], lon[new]]
    order = np.lexsort((t, code))
    code, t, lat, lon = code[order], t[order], lat[order], lon[order]
    first = np.r_[True, (code[1:] != code[:-1]) | (t[1:] != t[:-1])]  # one fix per vehicle and instant
    code, t, lat, lon = code[first], t[first], lat[first], lon[first]

    dt, d = np.diff(t), metres(lat[:-1], lon[:-1], lat[1:], lon[1:])
    valid = (code[1:] == code[:-1]) & (dt <= MAX_GAP_S)
    kmh = d / np.where(valid, dt, 1.0) * 3.6
    still, moving = valid & (kmh < STILL_KMH), valid & (kmh >= STILL_KMH)
    cell = cells((lat[:-1] + lat[1:]) / 2, (lon[:-1] + lon[1:]) / 2)
    hour = hours_of_week(t[:-1])

    ended, going_on = _stops(code, t, d, dt, still, cell, hour, names, tails)
    short = [s for s in ended if s.seconds < DWELL_S]
    sums = Sums.of(np.r_[cell[moving], [s.cell for s in short]].astype(np.int64),
                   np.r_[hour[moving], [s.hour for s in short]].astype(np.int64),
                   np.r_[np.ones(moving.sum()), [s.pairs for s in short]],
                   np.r_[d[moving], [s.metres for s in short]], np.r_[dt[moving], [s.seconds for s in short]],
                   np.r_[np.minimum(kmh[moving] // BUCKET_KMH, BUCKETS - 1), np.zeros(len(short))].astype(np.int64))
    last = np.r_[np.nonzero(code[1:] != code[:-1])[0], len(code) - 1]
    return sums, {names[code[i]]: Tail(float(t[i]), float(lat[i]), float(lon[i]), going_on.get(int(code[i])))
                  for i in last}


def _stops(code: Ints, t: Floats, d: Floats, dt: Floats, still: np.ndarray, cell: Ints, hour: Ints,
           names: list[int], tails: dict[int, Tail]) -> tuple[list[Stop], dict[int, Stop]]:
    """The stops among the pairs (rows sorted by vehicle and time, each vehicle's tail first): those that
    ended, and per vehicle the stop still going on at its last fix. A stop a tail was in goes on into
    the vehicle's first pair when that pair is a stop too, and ends when a pair of another kind follows."""
    ended: list[Stop] = []
    going_on: dict[int, Stop] = {}
    first = np.r_[True, code[1:] != code[:-1]]
    for row in np.nonzero(first)[0]:
        tail = tails.get(names[code[row]])
        if tail is None or tail.stop is None:
            continue
        if row + 1 == len(code) or code[row + 1] != code[row]:
            going_on[int(code[row])] = tail.stop  # no new fix: the stop goes on
        elif not still[row]:
            ended.append(tail.stop)
    begins = still & ~np.r_[False, still[:-1]]
    at = np.nonzero(still)[0]
    run = (np.cumsum(begins) - 1)[at]
    runs = int(begins.sum())
    seconds = np.bincount(run, weights=dt[at], minlength=runs)
    distance = np.bincount(run, weights=d[at], minlength=runs)
    pairs = np.bincount(run, minlength=runs)
    ends = at[np.r_[np.nonzero(np.diff(run))[0], len(at) - 1]] if runs else at
    for r, (s, e) in enumerate(zip(np.nonzero(begins)[0], ends, strict=True)):
        vehicle = int(code[s])
        stop = Stop(float(t[s]), int(cell[s]), int(hour[s]), int(pairs[r]), float(distance[r]), float(seconds[r]))
        tail = tails.get(names[vehicle])
        if first[s] and tail is not None and tail.stop is not None:
            stop = replace(tail.stop, pairs=tail.stop.pairs + stop.pairs, metres=tail.stop.metres + stop.metres,
                           seconds=tail.stop.seconds + stop.seconds)
        if e + 2 < len(code) and code[e + 2] == vehicle:
            ended.append(stop)
        else:
            going_on[vehicle] = stop
    return ended, going_on


def fold_pending(conn: psycopg.Connection) -> int:
    """Fold every committed fix not folded yet, in one transaction with the cursor's move; returns how
    many were read."""
    with conn.transaction(), conn.cursor(binary=True) as cur:
        cur.execute("INSERT INTO consumer_cursors (consumer) VALUES (%s) ON CONFLICT DO NOTHING", (PROFILE_CURSOR,))
        txid, last_id = cur.execute("SELECT txid::text, id FROM consumer_cursors WHERE consumer = %s FOR UPDATE",
                                    (PROFILE_CURSOR,)).fetchone()
        bounds = {"txid": txid, "id": last_id, "horizon": cur.execute(f"SELECT ({HORIZON})::text", ()).fetchone()[0]}
        small = cur.execute(f"SELECT count(*) < {SMALL} FROM (SELECT FROM positions WHERE {_PENDING} "
                            f"ORDER BY txid, id LIMIT {SMALL}) AS p", bounds).fetchone()[0]  # by the index
        partitioned = cur.execute("SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'positions'::regclass)"
                                  ).fetchone()[0]
        tails: dict[int, Tail] = {}
        parts, read = [], 0
        chunks = (_indexed(cur, bounds, SMALL) if small else _indexed(cur, bounds, None) if partitioned
                  else _ranges(conn, bounds))
        for vehicle, t, lat, lon in chunks:
            present = np.unique(vehicle).tolist()
            tails |= _tails(cur, [v for v in present if v not in tails])
            sums, moved = fold(vehicle, t, lat, lon, tails)
            tails |= moved
            parts.append(sums)
            read += len(t)
        if read:
            _add(cur, Sums.merge(parts))
            _keep_tails(cur, tails)
        cur.execute("UPDATE consumer_cursors SET txid = %s::xid8, id = 0 WHERE consumer = %s",
                    (bounds["horizon"], PROFILE_CURSOR))  # every row below the horizon is folded
        return read


SMALL = 200_000  # a backlog up to this many fixes is read through the (txid, id) index
RANGE_PAGES = 16_000  # a block range of the table: about a million fixes
_PENDING = "(txid, id) > (%(txid)s::xid8, %(id)s) AND txid < %(horizon)s::xid8"
# Fixes as one row of arrays: a million cross in about a second this way, several times faster than
# row by row. A vehicle is its hashtextextended key (a number: the tails' key too).
_ARRAYS = ("SELECT array_agg(hashtextextended(vehicle_id, 0)), array_agg(date_part('epoch', ts)), array_agg(lat), "
           "array_agg(lon) FROM (SELECT vehicle_id, ts, lat, lon FROM positions WHERE " + _PENDING + " {}) AS p")


def _indexed(cur: psycopg.Cursor, bounds: dict[str, Any], limit: int | None) -> Iterator[tuple[np.ndarray, ...]]:
    """The pending fixes in one piece, in (txid, id) order: through the index, when `limit` (which does
    not cut them: there are fewer) says they are few, whatever the planner's statistics say."""
    columns = cur.execute(_ARRAYS.format(f"ORDER BY txid, id LIMIT {limit}" if limit else ""), bounds).fetchone()
    if columns[0] is not None:
        yield tuple(np.array(c) for c in columns)


def _ranges(conn: psycopg.Connection, bounds: dict[str, Any]) -> Iterator[tuple[np.ndarray, ...]]:
    """The pending fixes block range by block range (sequential reads; rows below the horizon were all
    written before the table's size is taken, so none lies beyond it). A connection of its own reads
    the next range while this one's fixes are folded."""
    reading = make_conninfo(conn.info.dsn, password=conn.info.password)
    with psycopg.connect(reading, autocommit=True) as reader, reader.cursor(binary=True) as cur, \
            ThreadPoolExecutor(1) as ahead:
        pages = cur.execute("SELECT pg_relation_size('positions') / current_setting('block_size')::int").fetchone()[0]
        query = _ARRAYS.format("AND ctid >= %(first)s::text::tid AND ctid < %(end)s::text::tid")

        def read(first: int) -> tuple:
            return cur.execute(query, {**bounds, "first": f"({first},0)", "end": f"({first + RANGE_PAGES},0)"}
                               ).fetchone()

        starts = range(0, pages, RANGE_PAGES)
        coming = ahead.submit(read, starts[0]) if starts else None
        for first in starts:
            columns = coming.result()
            if first + RANGE_PAGES < pages:
                coming = ahead.submit(read, first + RANGE_PAGES)
            if columns[0] is not None:
                yield tuple(np.array(c) for c in columns)


def _tails(cur: psycopg.Cursor, vehicles: list[int]) -> dict[int, Tail]:
    cur.execute("SELECT vehicle_key, date_part('epoch', ts), lat, lon, date_part('epoch', still_since), "
                "still_cell, still_hour, still_pairs, still_metres, still_seconds "
                "FROM speed_profile_tails WHERE vehicle_key = ANY(%s)", (vehicles,))
    return {v: Tail(ts, lat, lon, None if since is None else Stop(since, *stop))
            for v, ts, lat, lon, since, *stop in cur.fetchall()}


_ADDED = ("pairs = p.pairs + excluded.pairs, metres = p.metres + excluded.metres, "
          "seconds = p.seconds + excluded.seconds, speed_counts = (SELECT array_agg(a + b ORDER BY i) "
          "FROM unnest(p.speed_counts, excluded.speed_counts) WITH ORDINALITY AS u (a, b, i))")


def _add(cur: psycopg.Cursor, sums: Sums) -> None:
    """Add the sums to the profile and the totals (arrays element by element)."""
    cur.execute("CREATE TEMP TABLE speed_fold (cell bigint, hour_of_week smallint, pairs integer, metres float8, "
                f"seconds float8, {', '.join(f'c{i} integer' for i in range(BUCKETS))}) ON COMMIT DROP")
    with cur.copy("COPY speed_fold FROM STDIN (FORMAT binary)") as copy:
        copy.write(_binary_rows(sums))
    cur.execute("INSERT INTO speed_profile AS p SELECT cell, hour_of_week, pairs, metres, seconds, "
                f"ARRAY[{', '.join(f'c{i}' for i in range(BUCKETS))}] FROM speed_fold "
                "ON CONFLICT (cell, hour_of_week) DO UPDATE SET " + _ADDED)
    every = sums.hour == ANY_HOUR
    cur.execute("INSERT INTO speed_totals AS p (pairs, metres, seconds, speed_counts) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (one) DO UPDATE SET folded_at = clock_timestamp(), " + _ADDED,
                (int(sums.pairs[every].sum()), float(sums.metres[every].sum()), float(sums.seconds[every].sum()),
                 sums.counts[every].sum(axis=0).tolist()))


def _binary_rows(sums: Sums) -> bytes:
    """The sums as COPY's binary format: every row has the same fixed-width fields, so numpy lays them out
    at once (text would cost seconds a million rows)."""
    fields = [("cell", ">i8"), ("hour", ">i2"), ("pairs", ">i4"), ("metres", ">f8"), ("seconds", ">f8"),
              *((f"c{i}", ">i4") for i in range(BUCKETS))]
    layout = np.dtype([("n", ">i2"), *((part, t) for name, t in fields
                                       for part, t in ((f"{name}_len", ">i4"), (name, t)))])
    rows = np.zeros(len(sums.cell), dtype=layout)
    rows["n"] = len(fields)
    for name, t in fields:
        rows[f"{name}_len"] = np.dtype(t).itemsize
    rows["cell"], rows["hour"], rows["pairs"] = sums.cell, sums.hour, sums.pairs
    rows["metres"], rows["seconds"] = sums.metres, sums.seconds
    for i in range(BUCKETS):
        rows[f"c{i}"] = sums.counts[:, i]
    return b"PGCOPY\n\xff\r\n\x00" + bytes(8) + rows.tobytes() + b"\xff\xff"


def _keep_tails(cur: psycopg.Cursor, tails: dict[int, Tail]) -> None:
    cur.executemany(
        "INSERT INTO speed_profile_tails VALUES (%s, to_timestamp(%s), %s, %s, to_timestamp(%s), %s, %s, %s, %s, %s) "
        "ON CONFLICT (vehicle_key) DO UPDATE SET ts = excluded.ts, lat = excluded.lat, lon = excluded.lon, "
        "still_since = excluded.still_since, still_cell = excluded.still_cell, still_hour = excluded.still_hour, "
        "still_pairs = excluded.still_pairs, still_metres = excluded.still_metres, "
        "still_seconds = excluded.still_seconds",
        [(v, tail.ts, tail.lat, tail.lon, *((tail.stop.since, tail.stop.cell, tail.stop.hour, tail.stop.pairs,
                                            tail.stop.metres, tail.stop.seconds) if tail.stop else (None,) * 6))
         for v, tail in tails.items()])
