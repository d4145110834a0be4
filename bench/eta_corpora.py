"""The shared trajectory corpora as bench.eta_real's CSV (trip_id,vehicle_id,ts,lat,lon; ts with offset).

    python -m bench.eta_corpora [--corpora ../shared/corpora/trajectories] [--out var/eta]

Writes `liverpool.csv`, one bus lane (Liverpool route 14 outbound) driven 16 times, given as both the
history and the trips of bench.eta_real, so each trip is measured against the other 15
(leave-one-trip-out); and `aracaju_history.csv` / `aracaju_trips.csv`, the 163 Go!Track car and bus
tracks of Aracaju split by track (even track ids the history, odd ones the trips). Times: Liverpool's
are UK time in January (UTC), Aracaju's local time (UTC-3).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

from bench.eta_real import HEADER

CORPORA = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora" / "trajectories"


def liverpool(rows: Iterable[dict[str, str]]) -> Iterator[list[str]]:
    for r in rows:
        yield [r["trip_id"], r["vehicle_id"], r["timestamp"].replace(" ", "T") + "+00:00", r["latitude"],
               r["longitude"]]


def aracaju(rows: Iterable[dict[str, str]]) -> Iterator[list[str]]:
    for r in rows:  # a track is one device's trip: its id stands for the vehicle too
        yield [r["track_id"], f"track-{r['track_id']}", r["time"].replace(" ", "T") + "-03:00", r["latitude"],
               r["longitude"]]


def write(path: Path, rows: Iterable[list[str]]) -> int:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(HEADER)
        rows = list(rows)
        out.writerows(rows)
    return len(rows)


def convert(corpora: Path, out: Path) -> dict[str, int]:
    """Write the three files; rows written by file name."""
    out.mkdir(parents=True, exist_ok=True)
    with (corpora / "liverpool_route14_outbound.csv").open(newline="", encoding="utf-8") as f:
        written = {"liverpool.csv": write(out / "liverpool.csv", liverpool(csv.DictReader(f)))}
    with (corpora / "go_track_trackspoints.csv").open(newline="", encoding="utf-8") as f:
        tracks = list(aracaju(csv.DictReader(f)))
    for name, parity in (("aracaju_history.csv", 0), ("aracaju_trips.csv", 1)):
        written[name] = write(out / name, (r for r in tracks if int(r[0]) % 2 == parity))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    parser.add_argument("--out", type=Path, default=Path("var/eta"))
    args = parser.parse_args()
    for name, rows in convert(args.corpora, args.out).items():
        print(f"{args.out / name}: {rows} fixes")


if __name__ == "__main__":
    main()
