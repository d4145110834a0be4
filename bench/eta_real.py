"""ETA error on real drives, replayed without look-ahead through the ETA the correlator uses.

    python -m bench.eta_real --history FILE --trips FILE [--horizons 60,30,10] [--route own|history]
                             [--json OUT] [--database postgresql://postgres@127.0.0.1:5432/postgres]

Both files are CSV with the header `trip_id,vehicle_id,ts,lat,lon` (ts ISO 8601 with its UTC offset),
one fix a row (bench/eta_corpora.py writes them from the shared trajectory corpora). A trip arrives
with its first fix within 200 m of its last one. The history's fixes go into `positions` of a database
of the bench's own and its trips into `past_trips`; the CRM worker's history job builds the speed
profile, the trips' paths and the calibration from them. A trip that is in both files is left out of
the history while it is evaluated (leave-one-trip-out: the history is built again without it).

Each trip is then replayed fix by fix: at its last fix before arrival minus each horizon, crm_link.eta
.forecast (what the correlator calls on every fix) is asked, seeing only that trip's fixes up to then.
The planned route is the trip's own path (`--route own`), or none, so the ETA takes the median path of
the past trips from there to the destination, else the straight line (`--route history`).

Printed per horizon and method (naive = the distance left over the history's median speed; today's =
the distance left over the smoothed recent speed, 15-90 km/h; new = what the correlator now stores):
trips, mean absolute error, 90th percentile of the absolute error and mean signed error (late > 0)
in minutes with 95 % bootstrap intervals, how often the new ETA's p10-p90 band held the arrival and
its median width.
A horizon with fewer than MIN_TRIPS trips is printed as insufficient.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

from bench.ingest import fresh_database
from crm_link import eta, history_job
from crm_link.detectors import Watch
from crm_link.geo import great_circle_m
from crm_link.thresholds import Thresholds

HEADER = ["trip_id", "vehicle_id", "ts", "lat", "lon"]
ARRIVED_M = 200.0
MIN_TRIPS = 10
MAX_STALE_S = 120.0  # a query needs a fix this recent before its time
BOOTSTRAP = 2000
METHODS = {"naive": "naive", "today's": "speed", "new": "new", "  profile": "profile", "  past trips": "past_trips"}


class CsvError(ValueError):
    """A row that is not a fix: its file and line, and what is wrong."""


@dataclass(frozen=True, slots=True)
class Fix:
    trip_id: str
    vehicle_id: str
    ts: datetime
    lat: float
    lon: float


def parse(lines: Iterable[str], name: str) -> dict[str, list[Fix]]:
    """Trips (in order of first appearance) and their fixes in time order, from CSV text."""
    rows = csv.reader(lines)
    header = next(rows, None)
    if header != HEADER:
        raise CsvError(f"{name}:1: the header must be {','.join(HEADER)}, not {','.join(header or [])!r}")
    trips: dict[str, list[Fix]] = {}
    for fix in (_fix(row, name, rows.line_num) for row in rows):
        trips.setdefault(fix.trip_id, []).append(fix)
    return {trip: sorted(fixes, key=lambda f: f.ts) for trip, fixes in trips.items()}


def _fix(row: list[str], name: str, line: int) -> Fix:
    where = f"{name}:{line}"
    if len(row) != len(HEADER):
        raise CsvError(f"{where}: {len(row)} fields, expected {len(HEADER)} ({','.join(HEADER)})")
    trip, vehicle, ts, lat, lon = row
    if not trip or not vehicle:
        raise CsvError(f"{where}: trip_id and vehicle_id must not be empty")
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        raise CsvError(f"{where}: ts {ts!r} is not an ISO 8601 time") from None
    if when.utcoffset() is None:
        raise CsvError(f"{where}: ts {ts!r} has no UTC offset (write e.g. {ts}+08:00)")
    try:
        latitude, longitude = float(lat), float(lon)
    except ValueError:
        raise CsvError(f"{where}: lat {lat!r} / lon {lon!r} are not numbers") from None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise CsvError(f"{where}: lat {lat} / lon {lon} are outside -90..90 / -180..180")
    return Fix(trip, vehicle, when, latitude, longitude)


def read(path: Path) -> dict[str, list[Fix]]:
    with path.open(newline="", encoding="utf-8") as f:
        return parse(f, str(path))


def arrival(fixes: list[Fix]) -> int:
    """The index of the trip's first fix within ARRIVED_M of its last."""
    last = fixes[-1]
    return next(i for i, f in enumerate(fixes) if great_circle_m(f.lat, f.lon, last.lat, last.lon) <= ARRIVED_M)


@dataclass(frozen=True, slots=True)
class Query:
    trip_id: str
    horizon_min: int
    actual_s: float
    predicted_s: dict[str, float]  # by method (today's is `speed`; `new` is what is stored)
    p10_s: float
    p90_s: float
    method: str


def build_history(conn: psycopg.Connection, history: dict[str, list[Fix]]) -> None:
    """An empty history, then these trips: their fixes folded into the profile, their paths built and the
    methods measured on them, by the CRM worker's history job."""
    conn.execute("TRUNCATE positions, speed_profile, speed_totals, speed_profile_tails, past_trips, eta_calibration, "
                 "consumer_cursors")
    _store(conn, [f for fixes in history.values() for f in fixes], "history", lambda f: f.vehicle_id)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO past_trips (vehicle_id, departed_at, arrived_at, lane) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT DO NOTHING",
                        [(fixes[0].vehicle_id, fixes[0].ts, fixes[arrival(fixes)].ts, "csv")
                         for fixes in history.values() if arrival(fixes) > 0])
    conn.commit()
    history_job.build_all(conn)


def _store(conn: psycopg.Connection, fixes: list[Fix], gateway: str, vehicle: Callable[[Fix], str]) -> None:
    with conn.cursor() as cur, cur.copy("COPY positions (gateway_id, seq, ts, vehicle_id, lat, lon) FROM STDIN") as c:
        for seq, f in enumerate(fixes):
            c.write_row((gateway, seq, f.ts, vehicle(f), f.lat, f.lon))
    conn.commit()


def _replayed(fix: Fix) -> str:
    """The vehicle id a trip's fixes are replayed under: the trip's own, so the ETA sees only them."""
    return f"trip:{fix.trip_id}"


def replay(conn: psycopg.Connection, fixes: list[Fix], horizons: list[int], own_route: bool) -> Iterator[Query]:
    """The forecasts at each horizon before the trip's arrival, from its fixes up to then (stored
    beforehand under _replayed's vehicle id)."""
    end = arrival(fixes)
    arrived, t = fixes[end].ts, Thresholds()
    route = {"type": "LineString", "coordinates": [[f.lon, f.lat] for f in fixes[:end + 1]]}
    demand = {"id": 0, "vehicle_id": _replayed(fixes[0]), "planned_route": route if own_route else None,
              "d_lat": fixes[-1].lat, "d_lon": fixes[-1].lon, "d_radius": ARRIVED_M, "eta": None}
    watch, speeds = Watch(), []
    for i, f in enumerate(fixes[:end]):
        kmh = 0.0 if i == 0 else great_circle_m(fixes[i - 1].lat, fixes[i - 1].lon, f.lat, f.lon) / max(
            (f.ts - fixes[i - 1].ts).total_seconds(), 1.0) * 3.6
        watch.advance(f.ts, f.lat, f.lon, kmh, None, t)
        speeds.append(watch.speed_kmh_avg or 0.0)
    for horizon in horizons:
        asked = arrived - timedelta(minutes=horizon)
        i = max((i for i, f in enumerate(fixes[:end]) if f.ts <= asked), default=None)
        if i is None or (asked - fixes[i].ts).total_seconds() > MAX_STALE_S:
            continue
        f = fixes[i]
        with conn.cursor() as cur:
            forecast = eta.forecast(cur, demand, {"ts": f.ts, "lat": f.lat, "lon": f.lon, "id": 0}, speeds[i], t)
        yield Query(f.trip_id, horizon, (arrived - f.ts).total_seconds(),
                    {**forecast.by_method, "new": forecast.to_go_s}, forecast.p10_s, forecast.p90_s, forecast.method)


def evaluate(database_url: str, history: dict[str, list[Fix]], trips: dict[str, list[Fix]], horizons: list[int],
             own_route: bool) -> list[Query]:
    """Every query of every trip; a trip of the history is evaluated against the history without it."""
    trips = {k: v for k, v in trips.items() if arrival(v) > 0}
    rounds = [(history, [k for k in trips if k not in history])] + [
        ({k: v for k, v in history.items() if k != trip}, [trip]) for trip in trips if trip in history]
    queries = []
    with psycopg.connect(database_url) as conn:
        for past, evaluated in rounds:
            if not evaluated:
                continue
            build_history(conn, past)
            _store(conn, [f for trip in evaluated for f in trips[trip]], "trips", _replayed)
            for trip in evaluated:
                queries += replay(conn, [f for f in trips[trip]], horizons, own_route)
    return queries


def _interval(values: np.ndarray, statistic, rng: np.random.Generator) -> tuple[float, float]:
    draws = [statistic(rng.choice(values, len(values))) for _ in range(BOOTSTRAP)]
    return float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def summarise(queries: list[Query], horizons: list[int]) -> dict:
    """Per horizon and method: trips, MAE, p90 |error|, mean signed error (minutes) with 95 % intervals,
    and the band's hits; None where fewer than MIN_TRIPS trips."""
    rng = np.random.default_rng(0)
    out: dict = {}
    for horizon in horizons:
        at = [q for q in queries if q.horizon_min == horizon]
        out[str(horizon)] = row = {}
        for label, method in METHODS.items():
            errors = np.array([q.predicted_s[method] - q.actual_s for q in at if method in q.predicted_s]) / 60
            if len(errors) < MIN_TRIPS:
                row[label.strip()] = {"trips": len(errors), "insufficient": True}
                continue
            stats = {"mae_min": lambda e: np.mean(np.abs(e)), "p90_abs_min": lambda e: np.quantile(np.abs(e), 0.9),
                     "mean_signed_min": np.mean}
            row[label.strip()] = {"trips": len(errors), **{
                name: {"value": round(float(f(errors)), 2), "ci95": [round(x, 2) for x in _interval(errors, f, rng)]}
                for name, f in stats.items()}}
        if len(at) >= MIN_TRIPS:
            held = np.array([q.p10_s <= q.actual_s <= q.p90_s for q in at], dtype=float)
            row["new"]["band_holds"] = {"value": round(float(held.mean()), 3),
                                        "ci95": [round(x, 3) for x in _interval(held, np.mean, rng)]}
            row["new"]["band_width_min"] = round(float(np.median([q.p90_s - q.p10_s for q in at])) / 60, 2)
    return out


def report(summary: dict, own_route: bool, history: str, trips: str) -> str:
    lines = [f"history {history}, trips {trips}",
             "planned route: " + ("each trip's own path" if own_route else
                                  "none: the median path of the past trips from there, else the straight line"),
             "minutes; [95 % bootstrap interval]; late > 0"]
    for horizon, row in summary.items():
        lines.append(f"{horizon} min before arrival:")
        for label in METHODS:
            r = row[label.strip()]
            if r.get("insufficient"):
                lines.append(f"  {label:<13} {r['trips']:4} trips: insufficient")
                continue
            cells = "  ".join(f"{name} {r[key]['value']:6.2f} [{r[key]['ci95'][0]:6.2f}, {r[key]['ci95'][1]:6.2f}]"
                              for name, key in (("MAE", "mae_min"), ("p90 |err|", "p90_abs_min"),
                                                ("signed", "mean_signed_min")))
            band = r.get("band_holds")
            lines.append(f"  {label:<13} {r['trips']:4} trips  {cells}" + (
                f"  p10-p90 holds {band['value']:.0%} [{band['ci95'][0]:.0%}, {band['ci95'][1]:.0%}], median width "
                f"{r['band_width_min']:.1f}" if band else ""))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--trips", type=Path, required=True)
    parser.add_argument("--horizons", default="60,30,10", help="minutes before arrival, comma-separated")
    parser.add_argument("--route", choices=("own", "history"), default="own")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    try:
        horizons = [int(h) for h in args.horizons.split(",")]
    except ValueError:
        parser.error(f"--horizons {args.horizons!r}: give whole minutes separated by commas, e.g. 60,30,10")
    try:
        history, trips = read(args.history), read(args.trips)
    except (CsvError, OSError) as exc:
        parser.exit(2, f"bench.eta_real: {exc}\n")
    url = fresh_database(args.database)
    try:
        queries = evaluate(url, history, trips, horizons, args.route == "own")
    finally:
        with psycopg.connect(args.database, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}"')
    summary = summarise(queries, horizons)
    print(report(summary, args.route == "own", str(args.history), str(args.trips)))
    if args.json:
        args.json.write_text(json.dumps({"route": args.route, "summary": summary,
                                         "queries": [asdict(q) for q in queries]}, indent=1, default=str))


if __name__ == "__main__":
    main()
