"""Bulk import of demand records from CSV or JSON lines through the same upsert as the API.

Each record goes in its own savepoint: a bad record is reported (line, field, reason) and rolled back
alone, the good ones are committed together at the end. Re-importing a file changes nothing, since
the upsert is idempotent on (customer_id, external_ref).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pydantic import ValidationError

from common.failures import pydantic_message
from crm_link.demands import DemandRecord, UnknownReference, upsert_demand

REF = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # as the API's path parameter
CUSTOMER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CSV_COLUMNS = ("customer_id", "external_ref", "origin_site_id", "destination_site_id", "destination_lat",
               "destination_lon", "destination_radius_m", "pickup_from", "pickup_to", "delivery_from", "delivery_to",
               "rush", "service_level", "vehicle_id", "planned_route", "items")
_DESTINATION = {"destination_site_id": "site_id", "destination_lat": "lat", "destination_lon": "lon",
                "destination_radius_m": "radius_m"}


@dataclass
class RowError:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class Report:
    created: int = 0
    updated_or_unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)


class BadRow(ValueError):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name

    @classmethod
    def first_of(cls, exc: ValidationError) -> BadRow:
        """The first problem the record's validation found: its field and its words."""
        first = exc.errors()[0]
        return cls(".".join(str(p) for p in first["loc"]) or "row", pydantic_message(first))


def _cells(row: dict[str, Any]) -> dict[str, str]:
    """The row's non-empty cells, stripped."""
    if None in row:  # csv.DictReader puts the surplus of a too-long row under the key None
        raise BadRow("row", "more values than columns")
    return {k: v.strip() for k, v in row.items() if isinstance(v, str) and v.strip()}


def _from_csv(row: dict[str, Any]) -> dict[str, Any]:
    values = _cells(row)
    record: dict[str, Any] = {k: v for k, v in values.items() if k not in _DESTINATION and k != "items"}
    record["destination"] = {_DESTINATION[k]: v for k, v in values.items() if k in _DESTINATION}
    record["items"] = [{"epc_uri": uri} for uri in values.get("items", "").split()]
    if "planned_route" in record:
        try:
            record["planned_route"] = json.loads(record["planned_route"])
        except json.JSONDecodeError as exc:
            raise BadRow("planned_route", f"not JSON: {exc.msg}") from None
    return record


def _from_json(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadRow("line", f"not JSON: {exc.msg}") from None
    if not isinstance(record, dict):
        raise BadRow("line", "not a JSON object")
    return record


def _refuse(field_name: str, reason: str) -> Callable[[], dict[str, Any]]:
    def thunk() -> dict[str, Any]:
        raise BadRow(field_name, reason)
    return thunk


def records(path: Path, fmt: str,
            columns: tuple[str, ...] = CSV_COLUMNS) -> Iterator[tuple[int, Callable[[], dict[str, Any]]]]:
    """(line number, a thunk giving the raw record or raising BadRow) for each record of the file
    (CSV: the columns it may have).
    Bytes that are not UTF-8 are kept as surrogates and refused per record, not for the whole file."""
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
        if fmt == "jsonl":
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield number, lambda line=line: _from_json(line)
            return
        reader = csv.DictReader(f)
        unknown = set(reader.fieldnames or ()) - set(columns)
        if unknown:
            raise BadRow("header", f"unknown columns: {', '.join(sorted(unknown))} (known: {', '.join(columns)})")
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield reader.line_num, _refuse("row", f"malformed CSV: {exc}")
                continue
            yield reader.line_num, lambda row=row: _from_csv(row) if columns is CSV_COLUMNS else _cells(row)


def refuse_undecodable(raw: dict[str, Any]) -> None:
    """BadRow for bytes that were not UTF-8 (kept as surrogates by `records`)."""
    if any("\udc80" <= ch <= "\udcff" for ch in json.dumps(raw, ensure_ascii=False)):
        raise BadRow("row", "not valid UTF-8")


def _import_one(conn: psycopg.Connection, raw: dict[str, Any], customer: str | None) -> bool:
    refuse_undecodable(raw)
    owner = raw.pop("customer_id", None) or customer
    if customer and owner != customer:
        raise BadRow("customer_id", f"{owner!r} is not the --customer {customer!r}")
    if not isinstance(owner, str) or not CUSTOMER.match(owner):
        raise BadRow("customer_id", "required (a column or --customer), [A-Za-z0-9._-]{1,64}")
    ref = raw.pop("external_ref", None)
    if not isinstance(ref, str) or not REF.match(ref):
        raise BadRow("external_ref", "required, [A-Za-z0-9._:-]{1,128}")
    if "\x00" in json.dumps(raw):
        raise BadRow("row", "contains a NUL character")
    try:
        record = DemandRecord.model_validate(raw)
    except ValidationError as exc:
        raise BadRow.first_of(exc) from None
    if conn.execute("SELECT 1 FROM customers WHERE id = %s", (owner,)).fetchone() is None:
        raise BadRow("customer_id", f"unknown customer {owner!r}")
    try:
        return upsert_demand(conn, owner, ref, record)[1]
    except UnknownReference as exc:
        raise BadRow("reference", str(exc)) from None


def import_file(conn: psycopg.Connection, path: Path, fmt: str, customer: str | None = None,
                progress: Callable[[int], None] = lambda _: None) -> Report:
    """Import every record of the file in one transaction, each in a savepoint; commits the good ones."""
    report = Report()
    try:
        with conn.transaction():
            for done, (line, raw) in enumerate(records(path, fmt), 1):
                try:
                    with conn.transaction():
                        created = _import_one(conn, raw(), customer)
                    report.created += created
                    report.updated_or_unchanged += not created
                except BadRow as exc:
                    report.errors.append(RowError(line, exc.field, str(exc)))
                except psycopg.DataError as exc:  # e.g. a value PostgreSQL cannot store
                    report.errors.append(RowError(line, "row", str(exc).splitlines()[0]))
                progress(done)
    except BadRow as exc:  # the file itself (its header) is unusable: nothing imported
        report.errors.append(RowError(1, exc.field, str(exc)))
    return report
