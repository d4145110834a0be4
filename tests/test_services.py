"""The real services the suite depends on are there: if not, the suite fails here first, loudly."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

import psycopg

from storage.migrate import migrate
from tests.conftest import ADMIN_PG_URL, MQTT_URL


def test_postgresql_is_reachable_and_migrations_are_idempotent(db_url: str) -> None:
    assert migrate(db_url) == []  # already applied to the template
    with psycopg.connect(db_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert {"tag_observations", "positions", "gateway_states", "demands", "dead_letters"} <= tables
    with psycopg.connect(ADMIN_PG_URL) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_mosquitto_is_reachable() -> None:
    url = urlparse(MQTT_URL)
    # MQTT 3.1.1 CONNECT, client id "probe"; a broker answers CONNACK (0x20 ...) with return code 0.
    connect = bytes.fromhex("101100044d5154540402003c000570726f6265")
    with socket.create_connection((url.hostname, url.port or 1883), timeout=5) as sock:
        sock.sendall(connect)
        assert sock.recv(4) == b"\x20\x02\x00\x00"
