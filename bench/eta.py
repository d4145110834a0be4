"""ETA error on simulated trips, through the real correlator.

    python -m bench.eta [--database postgresql://postgres@127.0.0.1:5432/postgres] [--period 10] [--history 20]

Each trip is NMEA from the `drive` simulator (one leg per speed), decoded by the gateway's NMEA
decoder, written into `positions` of a database of its own one fix every `--period` seconds of trip
time, and applied by `process_pending` after each fix, as the CRM worker would. The ETA stored after
each fix is compared with the time the shipment really arrived (its `arrived` status event).
Prints, per trip and per band of time still to go, the mean and the largest absolute error in
minutes and in percent of the time still to go, the error of the ETA 30 and 10 minutes before the
arrival, and when `late` opened before the window (plus grace) was breached, where the trip has a window.

Each trip runs twice: on an empty history (the ETA falls back to distance over the recent speed, the
method before the history existed), then after `--history` earlier drives of the same lane on the
weekdays before it (same departure time, each drive's speeds scaled by a factor of its own between
0.9 and 1.1), folded by the CRM worker's history job. Those drives go at the trip's usual speeds: the
jam trip's lane is usually driven at 50 km/h throughout, the jam is that day's.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import psycopg

from bench.ingest import fresh_database
from crm_link import history_job
from crm_link.correlate import process_pending
from crm_link.demands import DemandRecord, upsert_demand
from crm_link.directory import upsert_customer, upsert_site, upsert_vehicle
from crm_link.geo import great_circle_m
from device_drivers.gps import NmeaDecoder
from device_drivers.simulators import drive
from device_drivers.types import Fix
from launcher import demo

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
DOOR = "wh-sh1/door-03"
ITEM = "urn:epc:id:sgtin:0614141.812345.1"
# Warehouse Shanghai 1 → a DC in Pudong, about 29 km through the city and over the ring road.
LONG_ROUTE = [demo.WAREHOUSE, (31.2240, 121.5000), (31.2100, 121.5500), (31.1950, 121.6100), (31.1900, 121.6600),
              (31.1850, 121.7000), (31.1800, 121.7500)]
BANDS = ((30, None), (10, 30), (0, 10))  # minutes still to go
OUT_MIN = (30, 10)  # the error of the ETA this long before the arrival
DEST_RADIUS_M = 200


@dataclass(frozen=True, slots=True)
class Trip:
    name: str
    route: list[tuple[float, float]]
    legs: list[tuple[int, int, float]]  # (first waypoint, last waypoint, speed km/h), in order
    delivery_to: datetime | None = None
    usual: list[tuple[int, int, float]] | None = None  # how the lane is driven on other days; else `legs`


def trips() -> list[Trip]:
    return [
        Trip("demo route, 60 km/h", demo.ROUTE, [(0, len(demo.ROUTE) - 1, demo.SPEED_KMH)]),
        Trip("29 km, steady 50 km/h", LONG_ROUTE, [(0, 6, 50.0)], delivery_to=START + timedelta(minutes=25)),
        Trip("29 km, city 30 / ring road 80 / city 30", LONG_ROUTE, [(0, 2, 30.0), (2, 5, 80.0), (5, 6, 30.0)]),
        Trip("29 km, jam at 8 km/h mid-way", LONG_ROUTE, [(0, 3, 50.0), (3, 4, 8.0), (4, 6, 50.0)],
             delivery_to=START + timedelta(minutes=40), usual=[(0, 6, 50.0)]),
    ]


def fixes(trip: Trip, start: datetime) -> list[Fix]:
    """The trip's GPS epochs, as the gateway decodes them, one a second."""
    decoder, out, at = NmeaDecoder(), [], start
    for first, last, speed in trip.legs:
        epochs = list(drive(trip.route[first:last + 1], speed, start=at))
        epochs = epochs if last == len(trip.route) - 1 else epochs[:-1]  # the simulator parks at the end of a leg
        for epoch in epochs:
            out += decoder.feed(epoch)
        at += timedelta(seconds=len(epochs))
    return out + decoder.flush()


def _seed(conn: psycopg.Connection, trip: Trip) -> int:
    upsert_customer(conn, "acme", "ACME Trading Co.")
    upsert_site(conn, "wh-sh1", "Warehouse Shanghai 1", *trip.route[0], 300, doors=["door-03"])
    upsert_site(conn, "dest", "Destination", *trip.route[-1], DEST_RADIUS_M, doors=["door-01"])
    upsert_vehicle(conn, "TRK-042")
    record = DemandRecord.model_validate({
        "origin_site_id": "wh-sh1", "destination": {"site_id": "dest"}, "vehicle_id": "TRK-042",
        "delivery_to": trip.delivery_to, "items": [{"epc_uri": ITEM}],
        "planned_route": {"type": "LineString", "coordinates": [(lon, lat) for lat, lon in trip.route]}})
    demand_id, _ = upsert_demand(conn, "acme", trip.name, record)
    loaded = START - timedelta(minutes=5)
    conn.execute("INSERT INTO tag_observations (gateway_id, seq, ts, epc, epc_uri, read_point, reader, antenna, "
                 "rssi_dbm, reads, first_seen, direction) "
                 "VALUES ('gw', 1, %s, 'AA', %s, %s, 'r', 1, -50, 5, %s, 'out')",
                 (loaded, ITEM, DOOR, loaded))
    conn.commit()
    return demand_id


def past_drives(conn: psycopg.Connection, trip: Trip, drives: int, period_s: int) -> None:
    """`drives` earlier drives of the trip's lane at its usual speeds, a weekday each, stored as fixes
    and past trips (arrived on entering the destination's geofence, as the correlator has it); then the
    history job's steps over them."""
    rng = random.Random(trip.name)
    days = [d for d in range(1, 7 * drives) if (START - timedelta(days=d)).weekday() < 5][:drives]
    with conn.cursor() as cur:
        for n, day in enumerate(days):
            factor = rng.uniform(0.9, 1.1)
            usual = replace(trip, legs=[(a, b, v * factor) for a, b, v in trip.usual or trip.legs])
            epochs = fixes(usual, START - timedelta(days=day))
            kept = [*epochs[:-1:period_s], epochs[-1]]
            cur.executemany("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                            "VALUES ('past', %s, %s, 'TRK-042', %s, %s, %s)",
                            [(n * 100_000 + i, f.ts, f.lat, f.lon, f.speed_kmh) for i, f in enumerate(kept)])
            arrived = next(f.ts for f in kept if great_circle_m(f.lat, f.lon, *trip.route[-1]) <= DEST_RADIUS_M)
            cur.execute("INSERT INTO past_trips (vehicle_id, departed_at, arrived_at, lane) VALUES "
                        "('TRK-042', %s, %s, 'wh-sh1 → dest')", (kept[0].ts, arrived))  # as the correlator has it
    conn.commit()
    history_job.build_all(conn)


def run(database_url: str, trip: Trip, period_s: int, history: int = 0) -> dict:
    """Drive the trip after `history` past drives of its lane; the ETA after every fix against the real
    arrival, and the `late` lead time."""
    seq = itertools.count(1)
    predictions: list[tuple[datetime, datetime]] = []
    bands: list[tuple[datetime, datetime, str]] = []  # p10, p90, method of each ETA in transit
    with psycopg.connect(database_url) as conn:
        if history:
            past_drives(conn, trip, history, period_s)
        demand_id = _seed(conn, trip)
        epochs = fixes(trip, START)
        for fix in [*epochs[:-1:period_s], epochs[-1]]:  # always the last, parked at the destination
            conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                         "VALUES ('truck', %s, %s, 'TRK-042', %s, %s, %s)",
                         (next(seq), fix.ts, fix.lat, fix.lon, fix.speed_kmh))
            conn.commit()
            process_pending(conn)
            eta, status, *band = conn.execute("SELECT eta, status, eta_p10, eta_p90, eta_method FROM demands "
                                              "WHERE id = %s", (demand_id,)).fetchone()
            if status == "in_transit":
                predictions.append((fix.ts, eta))
                bands.append(tuple(band))
            elif predictions:  # arrived
                break
        arrived = conn.execute("SELECT ts FROM shipment_events WHERE demand_id = %s AND status = 'arrived'",
                               (demand_id,)).fetchone()[0]
        late = conn.execute("SELECT opened_at FROM exceptions WHERE demand_id = %s AND type = 'late'",
                            (demand_id,)).fetchone()
    return {"trip": trip.name, "trip_min": round((arrived - START).total_seconds() / 60, 1),
            "bands": list(_bands(predictions, arrived)),
            "error_min_at": {out: _error_at(predictions, arrived, out) for out in OUT_MIN},
            "methods": sorted({method for *_, method in bands}),
            "band_holds": round(sum(p10 <= arrived <= p90 for p10, p90, _ in bands) / len(bands), 3),
            "band_held": [sum(p10 <= arrived <= p90 for p10, p90, _ in bands), len(bands)],
            "band_width_pct": round(100 * statistics.median((p90 - p10) / (arrived - at) for (at, _), (p10, p90, _)
                                                            in zip(predictions, bands, strict=True)), 1),
            "late_opened_min_before_breach": None if late is None else round(
                (trip.delivery_to + timedelta(minutes=15) - late[0]).total_seconds() / 60, 1)}


def _error_at(predictions: list[tuple[datetime, datetime]], arrived: datetime, out_min: int) -> float | None:
    """The signed error of the last ETA given at least `out_min` minutes before the arrival (late > 0)."""
    given = [eta for at, eta in predictions if eta is not None and at <= arrived - timedelta(minutes=out_min)]
    return round((given[-1] - arrived).total_seconds() / 60, 2) if given else None


def _bands(predictions: list[tuple[datetime, datetime]], arrived: datetime) -> Iterator[dict]:
    for low, high in BANDS:
        errors = [(abs((eta - arrived).total_seconds()) / 60, (arrived - at).total_seconds() / 60)
                  for at, eta in predictions if eta is not None
                  and low <= (arrived - at).total_seconds() / 60 < (high or float("inf"))]
        if errors:
            yield {"to_go_min": f"{low}-{high or ''}", "fixes": len(errors),
                   "mean_abs_err_min": round(sum(e for e, _ in errors) / len(errors), 2),
                   "max_abs_err_min": round(max(e for e, _ in errors), 2),
                   "mean_err_pct": round(100 * sum(e / max(to_go, 1) for e, to_go in errors) / len(errors), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--period", type=int, default=10, help="seconds of trip time between fixes")
    parser.add_argument("--history", type=int, default=20, help="earlier drives of each lane in the history")
    args = parser.parse_args()
    out: dict[int, tuple[list[float], list[float]]] = {m: ([], []) for m in OUT_MIN}  # empty, with history
    held = [0, 0]  # ETAs with history whose band held the arrival, of all
    for trip in trips():
        for with_history, drives in enumerate((0, args.history)):
            url = fresh_database(args.database)
            try:
                result = run(url, trip, args.period, drives)
            finally:
                with psycopg.connect(args.database, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}"')
            print(f"{result['trip']} ({drives} past drives): arrived after {result['trip_min']} min; late opened "
                  f"{result['late_opened_min_before_breach']} min before the breach; ETA error "
                  + ", ".join(f"{e} min at {m} min out" for m, e in result["error_min_at"].items())
                  + f"; by {'/'.join(result['methods'])}, p10-p90 held the arrival {result['band_holds']:.0%} "
                  f"(median width {result['band_width_pct']} % of the time to go)")
            for band in result["bands"]:
                print(f"  {band['to_go_min']:>6} min to go: {band['fixes']:4} fixes, mean |error| "
                      f"{band['mean_abs_err_min']:5.2f} min (max {band['max_abs_err_min']:5.2f}), "
                      f"{band['mean_err_pct']:5.1f} % of the time to go")
            for m, e in result["error_min_at"].items():
                if e is not None:
                    out[m][with_history].append(abs(e))
            if with_history and result["error_min_at"][OUT_MIN[0]] is not None:  # the three trips
                held = [a + b for a, b in zip(held, result["band_held"], strict=True)]
    for m, (empty, full) in out.items():
        print(f"{m} min out, mean |error| over {len(empty)} trips: empty history {sum(empty) / len(empty):.2f} min, "
              f"{args.history} past drives {sum(full) / len(full):.2f} min")
    print(f"p10-p90 with {args.history} past drives held the arrival in {held[0] / held[1]:.0%} of the "
          f"{held[1]} ETAs of the three trips")

if __name__ == "__main__":
    main()
