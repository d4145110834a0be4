"""The schema speaks the vocabulary of storage/vocabulary.py and nothing else: every CHECK list, every
NOTIFY channel and webhook event of the migrated database is a word of it, and the Python code writes
channel names only through it."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from storage import vocabulary as v

ROOT = Path(__file__).resolve().parent.parent
# (table, column) → the vocabulary its CHECK constraint must list, exactly.
CHECKED = {
    ("demands", "status"): v.STATUSES,
    ("exceptions", "type"): v.EXCEPTION_TYPES,
    ("exceptions", "state"): v.EXCEPTION_STATES,
    ("api_keys", "role"): v.ROLES,
    ("feedback", "kind"): v.FEEDBACK_KINDS,
    ("webhook_deliveries", "state"): v.DELIVERY_STATES,
    ("webhook_subscriptions", "audience"): v.AUDIENCES,
    ("webhook_subscriptions", "channel"): v.NOTIFICATION_CHANNELS,
    ("webhook_subscriptions", "language"): v.LANGUAGES,
    ("customers", "language"): v.LANGUAGES,
    ("gateways", "kind"): v.GATEWAY_KINDS,
    ("demands", "eta_method"): v.ETA_METHODS,
    ("eta_history", "method"): v.ETA_METHODS,
    ("eta_calibration", "method"): v.ETA_METHODS,
}


def _check_lists(conn: psycopg.Connection) -> dict[tuple[str, str], set[str]]:
    """(table, column) → the words of each `column IN (...)` CHECK constraint of the database."""
    rows = conn.execute("SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
                        "WHERE contype = 'c' AND connamespace = 'public'::regnamespace").fetchall()
    found = {}
    for table, definition in rows:
        listed = re.fullmatch(r"CHECK \(\((\w+) = ANY \(ARRAY\[(.*)\]\)\)\)", definition)
        if listed:
            found[table, listed.group(1)] = set(re.findall(r"'([^']*)'::text", listed.group(2)))
    return found


@pytest.mark.parametrize(("table", "column"), list(CHECKED))
def test_each_check_constraint_lists_exactly_the_vocabulary(db_url: str, table: str, column: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert _check_lists(conn)[table, column] == set(CHECKED[table, column])


def test_no_check_list_of_the_schema_is_left_out_of_the_vocabulary(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        lists = _check_lists(conn)
    assert set(lists) - set(CHECKED) == {("tag_observations", "direction")}  # the MQTT contract's word


def test_the_database_notifies_and_enqueues_only_words_of_the_vocabulary(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        sources = "\n".join(r[0] for r in conn.execute(
            "SELECT prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'cargotrace%'"))
    assert set(re.findall(r"pg_notify\('(\w+)'", sources)) == {v.EXCEPTIONS_CHANNEL}
    assert set(re.findall(r"'((?!cargotrace\.)[a-z]+\.[a-z_]+)'", sources)) == set(v.WEBHOOK_EVENTS)


def test_channel_names_are_written_only_in_the_vocabulary() -> None:
    packages = [p for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name not in ("tests", "bench")]
    written = {str(f.relative_to(ROOT)) for package in packages for f in package.rglob("*.py")
               if any(f'"{channel}"' in f.read_text() for channel in v.CHANNELS)}
    assert written == {"storage/vocabulary.py"}


def test_customer_visible_exceptions_are_exception_types() -> None:
    assert set(v.CUSTOMER_VISIBLE_EXCEPTIONS) < set(v.EXCEPTION_TYPES)


def test_the_customer_view_of_an_exception_shows_exactly_the_visible_kinds(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        (source,) = conn.execute("SELECT prosrc FROM pg_proc "
                                 "WHERE proname = 'cargotrace_customer_exception'").fetchone()
    listed = re.search(r"x\.type IN \(([^)]*)\)", source)
    assert listed and set(re.findall(r"'(\w+)'", listed.group(1))) == set(v.CUSTOMER_VISIBLE_EXCEPTIONS)
