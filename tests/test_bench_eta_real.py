"""bench.eta_real: its CSV reader (every bad row is one line naming its file and line), the corpora's
converters, and the replay through the correlator's ETA on a few real Liverpool bus trips."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import eta_corpora
from bench.eta_real import HEADER, MAX_STALE_S, CsvError, evaluate, parse, read

ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=8)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3))]))
rows = st.tuples(ids, ids, times, st.floats(-90, 90), st.floats(-180, 180))


def text(header: list[str], lines: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines)
    return out.getvalue()


def as_row(trip: str, vehicle: str, ts: datetime, lat: float, lon: float) -> list[str]:
    return [trip, vehicle, ts.isoformat(), repr(lat), repr(lon)]


@given(st.lists(rows, min_size=1, max_size=30))
def test_every_fix_is_read_into_its_trip_in_time_order(fixes: list) -> None:
    trips = parse(io.StringIO(text(HEADER, [as_row(*f) for f in fixes])), "in.csv")
    assert sum(len(v) for v in trips.values()) == len(fixes)
    assert list(trips) == list(dict.fromkeys(f[0] for f in fixes))
    for trip, read_fixes in trips.items():
        assert [f.ts for f in read_fixes] == sorted(f[2] for f in fixes if f[0] == trip)
        assert all(f.trip_id == trip for f in read_fixes)


BAD = {
    "a field missing": lambda r: r[:4],
    "a field too many": lambda r: [*r, "x"],
    "no trip id": lambda r: ["", *r[1:]],
    "no vehicle id": lambda r: [r[0], "", *r[2:]],
    "a time that is not one": lambda r: [*r[:2], "yesterday", *r[3:]],
    "a time without its offset": lambda r: [*r[:2], "2026-01-26T15:57:02", *r[3:]],
    "a latitude that is not a number": lambda r: [*r[:3], "north", r[4]],
    "a latitude past the pole": lambda r: [*r[:3], "90.5", r[4]],
    "a longitude past the date line": lambda r: [*r[:4], "-180.01"],
}


@given(st.lists(rows, min_size=1, max_size=12), st.data(), st.sampled_from(sorted(BAD)))
def test_a_bad_row_is_one_line_naming_the_file_and_line(fixes: list, data: st.DataObject, kind: str) -> None:
    lines = [as_row(*f) for f in fixes]
    at = data.draw(st.integers(0, len(lines) - 1))
    lines[at] = BAD[kind](lines[at])
    with pytest.raises(CsvError) as caught:
        parse(io.StringIO(text(HEADER, lines)), "fixes.csv")
    message = str(caught.value)
    assert message.startswith(f"fixes.csv:{at + 2}: ") and "\n" not in message


@given(st.lists(st.sampled_from(["trip", "vehicle_id", "ts", "lat", "lon", "time", ""]), max_size=6))
def test_a_wrong_header_is_named_on_line_one(header: list[str]) -> None:
    if header == HEADER:
        return
    with pytest.raises(CsvError, match=r"^x\.csv:1: the header must be trip_id,vehicle_id,ts,lat,lon"):
        parse(io.StringIO(text(header, [])), "x.csv")


def test_the_converters_write_every_fix_of_both_corpora(corpora: Path, tmp_path: Path) -> None:
    written = eta_corpora.convert(corpora / "trajectories", tmp_path)
    assert written == {"liverpool.csv": 1533, "aracaju_history.csv": 8398, "aracaju_trips.csv": 9709}
    liverpool = read(tmp_path / "liverpool.csv")
    history, trips = read(tmp_path / "aracaju_history.csv"), read(tmp_path / "aracaju_trips.csv")
    assert len(liverpool) == 16 and len(history) + len(trips) == 163 and not set(history) & set(trips)
    first = liverpool["1091"][0]
    assert first.ts == datetime(2026, 1, 26, 15, 57, 2, tzinfo=UTC) and (first.lat, first.lon) == (53.44451, -2.925173)
    assert trips["1"][0].ts.utcoffset() == timedelta(hours=-3)


def test_on_real_bus_trips_the_history_halves_the_error_of_todays_eta(corpora: Path, tmp_path: Path,
                                                                       db_url: str) -> None:
    eta_corpora.convert(corpora / "trajectories", tmp_path)
    lane = read(tmp_path / "liverpool.csv")
    evaluated = ["1097", "1099", "1101"]  # three whole drives of the lane, against the other thirteen
    queries = evaluate(db_url, {k: v for k, v in lane.items() if k not in evaluated},
                       {k: lane[k] for k in evaluated}, [30, 10], own_route=True)
    assert sorted((q.trip_id, q.horizon_min) for q in queries) == sorted((t, h) for t in evaluated for h in (30, 10))
    for q in queries:  # asked at the last fix before arrival minus the horizon
        assert q.horizon_min * 60 <= q.actual_s <= q.horizon_min * 60 + MAX_STALE_S
        assert {"profile", "past_trips", "blend"} <= set(q.predicted_s) and q.method == "blend"
        assert q.p10_s < q.predicted_s["new"] < q.p90_s
    today = sum(abs(q.predicted_s["speed"] - q.actual_s) for q in queries)
    new = sum(abs(q.predicted_s["new"] - q.actual_s) for q in queries)
    assert new < today / 2
    with psycopg.connect(db_url) as conn:  # the replay read the history, never wrote it
        assert conn.execute("SELECT count(*) FROM past_trips").fetchone()[0] == 13
