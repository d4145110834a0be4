"""ETA error on simulated trips, through the real correlator.

    python -m bench.eta [--database postgresql://postgres@127.0.0.1:5432/postgres] [--period 10]

Each trip is NMEA from the `drive` simulator (one leg per speed), decoded by the gateway's NMEA
decoder, written into `positions` of a database of its own one fix every `--period` seconds of trip
time, and applied by `process_pending` after each fix, as the CRM worker would. The ETA stored after
each fix is compared with the time the shipment really arrived (its `arrived` status event).
Prints, per trip and per band of time still to go, the mean and the largest absolute error in
minutes and in percent of the time still to go, and when `late` opened before the window (plus
grace) was breached, where the trip has a window.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from bench.ingest import fresh_database
from crm_link.correlate import process_pending
from crm_link.demands import DemandRecord, upsert_demand
from crm_link.directory import upsert_customer, upsert_site, upsert_vehicle
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


@dataclass(frozen=True, slots=True)
class Trip:
    name: str
    route: list[tuple[float, float]]
    legs: list[tuple[int, int, float]]  # (first waypoint, last waypoint, speed km/h), in order
    delivery_to: datetime | None = None


def trips() -> list[Trip]:
    return [
        Trip("demo route, 60 km/h", demo.ROUTE, [(0, len(demo.ROUTE) - 1, demo.SPEED_KMH)]),
        Trip("29 km, steady 50 km/h", LONG_ROUTE, [(0, 6, 50.0)]),
        Trip("29 km, city 30 / ring road 80 / city 30", LONG_ROUTE, [(0, 2, 30.0), (2, 5, 80.0), (5, 6, 30.0)]),
        Trip("29 km, jam at 8 km/h mid-way", LONG_ROUTE, [(0, 3, 50.0), (3, 4, 8.0), (4, 6, 50.0)],
             delivery_to=START + timedelta(minutes=40)),
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
    upsert_site(conn, "dest", "Destination", *trip.route[-1], 200, doors=["door-01"])
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


def run(database_url: str, trip: Trip, period_s: int) -> dict:
    """Drive the trip; the ETA after every fix against the real arrival, and the `late` lead time."""
    seq = itertools.count(1)
    predictions: list[tuple[datetime, datetime]] = []
    with psycopg.connect(database_url) as conn:
        demand_id = _seed(conn, trip)
        epochs = fixes(trip, START)
        for fix in [*epochs[:-1:period_s], epochs[-1]]:  # always the last, parked at the destination
            conn.execute("INSERT INTO positions (gateway_id, seq, ts, vehicle_id, lat, lon, speed_kmh) "
                         "VALUES ('truck', %s, %s, 'TRK-042', %s, %s, %s)",
                         (next(seq), fix.ts, fix.lat, fix.lon, fix.speed_kmh))
            conn.commit()
            process_pending(conn)
            eta, status = conn.execute("SELECT eta, status FROM demands WHERE id = %s", (demand_id,)).fetchone()
            if status == "in_transit":
                predictions.append((fix.ts, eta))
            elif predictions:  # arrived
                break
        arrived = conn.execute("SELECT ts FROM shipment_events WHERE demand_id = %s AND status = 'arrived'",
                               (demand_id,)).fetchone()[0]
        late = conn.execute("SELECT opened_at FROM exceptions WHERE demand_id = %s AND type = 'late'",
                            (demand_id,)).fetchone()
    return {"trip": trip.name, "trip_min": round((arrived - START).total_seconds() / 60, 1),
            "bands": list(_bands(predictions, arrived)),
            "late_opened_min_before_breach": None if late is None else round(
                (trip.delivery_to + timedelta(minutes=15) - late[0]).total_seconds() / 60, 1)}


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
    args = parser.parse_args()
    for trip in trips():
        url = fresh_database(args.database)
        try:
            result = run(url, trip, args.period)
        finally:
            with psycopg.connect(args.database, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}"')
        print(f"{result['trip']}: arrived after {result['trip_min']} min; late opened "
              f"{result['late_opened_min_before_breach']} min before the breach")
        for band in result["bands"]:
            print(f"  {band['to_go_min']:>6} min to go: {band['fixes']:4} fixes, mean |error| "
                  f"{band['mean_abs_err_min']:5.2f} min (max {band['max_abs_err_min']:5.2f}), "
                  f"{band['mean_err_pct']:5.1f} % of the time to go")


if __name__ == "__main__":
    main()
