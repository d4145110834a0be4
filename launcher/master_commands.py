"""`cargotrace customers|sites|vehicles|gateways add|list|show|remove` and `cargotrace import master`:
master data through crm_link/master_data.py, as the database owner (like `cargotrace keys`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crm_link.master_records import Customer, Gateway, Record, Site, Vehicle

MODELS: dict[str, type[Record]] = {"customers": Customer, "sites": Site, "vehicles": Vehicle, "gateways": Gateway}
Add = Callable[..., argparse.ArgumentParser]


def _print(record: dict[str, Any], indent: int | None = 2) -> None:
    print(json.dumps(record, ensure_ascii=False, indent=indent, default=str))


def cmd_add(args: argparse.Namespace) -> int:
    import psycopg
    from pydantic import ValidationError

    from crm_link import master_data
    from crm_link.bulk_import import BadRow
    from crm_link.master_import import from_text

    model = MODELS[args.master_kind]
    given = {name: value for name in model.model_fields if (value := getattr(args, f"field_{name}")) is not None}
    try:
        record = model.model_validate(from_text(model, given))
    except BadRow as exc:
        sys.exit(f"error: --{exc.field.replace('_', '-')}: {exc}")
    except ValidationError as exc:
        for e in exc.errors():
            print(f"error: --{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}", file=sys.stderr)
        return 2
    with psycopg.connect(args.database_url()) as conn:
        try:
            stored, created = master_data.put(conn, args.master_kind, args.id, record)
        except (master_data.Invalid, master_data.Referenced) as exc:
            sys.exit(f"error: {exc}")
    _print(stored)
    print("created" if created else "stored (replacing the record)", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    import psycopg

    from crm_link import master_data

    with psycopg.connect(args.database_url()) as conn:
        rows = master_data.page(conn, args.master_kind, args.after, args.limit)
    for row in rows:
        _print(row, None)
    if len(rows) == args.limit:
        print(f"more: --after {rows[-1]['id']}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import psycopg

    from crm_link import master_data

    with psycopg.connect(args.database_url()) as conn:
        record = master_data.get(conn, args.master_kind, args.id)
    if record is None:
        sys.exit(f"error: no {args.master_kind[:-1]} {args.id!r}")
    _print(record)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    import psycopg

    from crm_link import master_data

    with psycopg.connect(args.database_url()) as conn:
        try:
            removed = master_data.remove(conn, args.master_kind, args.id)
        except master_data.Referenced as exc:
            sys.exit(f"error: {exc}")
    if not removed:
        sys.exit(f"error: no {args.master_kind[:-1]} {args.id!r}")
    print(f"removed {args.master_kind[:-1]} {args.id}", file=sys.stderr)
    return 0


def cmd_import_master(args: argparse.Namespace) -> int:
    import psycopg

    from crm_link.master_import import import_master

    path = Path(args.file)
    fmt = args.format or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
    with psycopg.connect(args.database_url()) as conn:
        report = import_master(conn, path, fmt, lambda n: print(f"\rrecords: {n}", end="", file=sys.stderr,
                                                                   flush=True))
    print(file=sys.stderr)
    for error in report.errors:
        print(error, file=sys.stderr)
    if report.errors:
        print(f"refused {len(report.errors)} rows: nothing imported", file=sys.stderr)
        return 1
    print(f"created {report.created}, changed {report.changed}, unchanged {report.unchanged}", file=sys.stderr)
    return 0


def add_commands(sub: argparse._SubParsersAction, add: Add, database_url: Callable[[], str]) -> None:
    for kind, model in MODELS.items():
        group = sub.add_parser(kind, help=f"{kind} (master data)", description=f"{kind} (master data)")
        group.set_defaults(master_kind=kind, database_url=database_url)
        kind_sub = group.add_subparsers(dest=f"{kind}_command", required=True, metavar="COMMAND")
        p = add("add", cmd_add, f"add or replace a {kind[:-1]} (the fields not given take their defaults)", kind_sub)
        p.add_argument("id")
        for name, info in model.model_fields.items():
            p.add_argument(f"--{name.replace('_', '-')}", dest=f"field_{name}", required=info.is_required(),
                           help=info.description or "lists: comma-separated or JSON; objects: JSON")
        p = add("list", cmd_list, f"{kind} in id order, one JSON object a line", kind_sub)
        p.add_argument("--after", default="", metavar="ID", help="start after this id (the next page)")
        p.add_argument("--limit", type=int, default=1000)
        add("show", cmd_show, f"one {kind[:-1]} as JSON", kind_sub).add_argument("id")
        add("remove", cmd_remove, f"remove a {kind[:-1]} nothing refers to any more", kind_sub).add_argument("id")
    imports = sub.add_parser("import", help="import files", description="import files")
    imports.set_defaults(database_url=database_url)
    imports_sub = imports.add_subparsers(dest="import_command", required=True, metavar="COMMAND")
    p = add("master", cmd_import_master, "import customers, sites, vehicles and gateways from CSV or JSON lines "
            "(a `kind` and an `id` a row; all or nothing: exit 1 and nothing imported when any row is refused)",
            imports_sub)
    p.add_argument("file", help="the file (columns and fields: docs/operations.md)")
    p.add_argument("--format", choices=("csv", "jsonl"), help="default: from the file name (.jsonl: JSON lines)")
