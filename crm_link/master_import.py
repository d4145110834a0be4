"""Master data from a file: CSV or JSON lines, one record per row, its `resource` (customers, sites,
vehicles, gateways; not `kind`, a gateway's own field) and `id` beside the record's fields. All or
nothing: every row is validated and written in one transaction, and any bad row (reported by line
and field) rolls the whole file back. Rows are written customers, sites, vehicles, gateways, so a
gateway may come before its site in the file. Re-importing a file changes nothing (the upsert is idempotent).
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pydantic import BaseModel, ValidationError

from crm_link import master_data
from crm_link.bulk_import import BadRow, RowError, records, refuse_undecodable
from crm_link.master_records import ID_PATTERN, Record

KINDS = tuple(master_data.KINDS)  # also the order rows are written in
CSV_COLUMNS = ("resource", "id", *dict.fromkeys(f for k in master_data.KINDS.values() for f in k.model.model_fields))


class _RollBack(Exception):
    """Leaves the import's transaction without committing."""


@dataclass
class Report:
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)


def _structured(annotation: Any) -> type | None:
    """list or dict when a field holds one (or a model: an object), possibly optional; else None."""
    origin = typing.get_origin(annotation)
    if origin is list:
        return list
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return dict
    if origin is typing.Annotated:
        return _structured(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return next(filter(None, map(_structured, typing.get_args(annotation))), None)
    return None


def from_text(model: type[Record], values: dict[str, str]) -> dict[str, Any]:
    """Text values (a CSV row, command-line options) as the record's fields: a list is JSON or words
    separated by commas or spaces; an object (contact, geofence, ...) is JSON; the rest stays text."""
    out: dict[str, Any] = {}
    for name, text in values.items():
        shape = _structured(model.model_fields[name].annotation) if name in model.model_fields else None
        if shape is None:
            out[name] = text
        elif shape is list and not text.lstrip().startswith("["):
            out[name] = text.replace(",", " ").split()
        else:
            try:
                out[name] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise BadRow(name, f"not JSON: {exc.msg}") from None
    return out


def _validated(kind: Any, record_id: Any, fields: dict[str, Any]) -> tuple[str, str, Record]:
    """(kind, id, the record) of one raw row, or BadRow naming the first field in error."""
    if kind not in master_data.KINDS:
        raise BadRow("resource", f"one of {', '.join(KINDS)}")
    if not isinstance(record_id, str) or not re.match(ID_PATTERN, record_id):
        raise BadRow("id", f"required, {ID_PATTERN}")
    try:
        return kind, record_id, master_data.KINDS[kind].model.model_validate(fields)
    except ValidationError as exc:
        raise BadRow.first_of(exc) from None


def _row(raw: dict[str, Any], csv_row: bool) -> tuple[str, str, Record]:
    refuse_undecodable(raw)
    raw = dict(raw)
    kind, record_id = raw.pop("resource", None), raw.pop("id", None)
    if csv_row:  # the cells given, as text
        model = master_data.KINDS[kind].model if kind in master_data.KINDS else None
        if model is not None:
            if extra := sorted(set(raw) - set(model.model_fields)):
                raise BadRow(extra[0], f"not a field of {kind}")
            raw = from_text(model, raw)
    return _validated(kind, record_id, raw)


def import_master(conn: psycopg.Connection, path: Path, fmt: str,
                  progress: Callable[[int], None] = lambda _: None) -> Report:
    """Validate every row, then write them all in one transaction; with any error, write nothing."""
    report, good, seen = Report(), [], {}
    try:
        for line, raw in records(path, fmt, CSV_COLUMNS):
            try:
                row = _row(raw(), fmt == "csv")
                if row[:2] in seen:  # which of the two would win is no one's intent
                    raise BadRow("id", f"{row[1]} is also on line {seen[row[:2]]}")
                seen[row[:2]] = line
                good.append((line, *row))
            except BadRow as exc:
                report.errors.append(RowError(line, exc.field, str(exc)))
    except BadRow as exc:  # the file itself (its header) is unusable
        report.errors.append(RowError(1, exc.field, str(exc)))
    if report.errors:
        return report
    good.sort(key=lambda row: (KINDS.index(row[1]), row[0]))
    try:
        with conn.transaction():
            for done, (line, kind, record_id, record) in enumerate(good, 1):
                before = master_data.get(conn, kind, record_id)
                try:
                    after, created = master_data.put(conn, kind, record_id, record)
                except master_data.Invalid as exc:
                    report.errors.append(RowError(line, exc.field, exc.reason))
                except master_data.Referenced as exc:  # only a site's PUT refuses so: doors still in use
                    report.errors.append(RowError(line, "doors", str(exc)))
                except psycopg.DataError as exc:  # e.g. a NUL character, which PostgreSQL cannot store
                    report.errors.append(RowError(line, "row", str(exc).splitlines()[0]))
                else:
                    report.created += created
                    report.changed += not created and before != after
                    report.unchanged += before == after
                progress(done)
            if report.errors:
                raise _RollBack
    except _RollBack:
        report.created = report.changed = report.unchanged = 0
    return report

