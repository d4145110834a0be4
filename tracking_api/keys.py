"""API keys: `ct_<prefix>_<secret>`. The prefix is public (lists, logs); only a hash of the secret is stored.

The secret is 256 random bits, so a single SHA-256 is as safe as a slow password hash here (there is
nothing to guess) and keeps authentication cheap on every request. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import psycopg

from storage.vocabulary import ROLES


@dataclass(frozen=True, slots=True)
class Principal:
    role: str
    customer_id: str | None
    prefix: str
    language: str | None = None  # the customer's configured language (customers.language), for its answers


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(conn: psycopg.Connection, role: str, customer_id: str | None = None, label: str = "") -> str:
    """Create a key and return it; it is never shown again."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if (role == "customer") != (customer_id is not None):
        raise ValueError("a customer key needs a customer id, and only a customer key")
    prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute("INSERT INTO api_keys (prefix, secret_hash, role, customer_id, label) VALUES (%s, %s, %s, %s, %s)",
                     (prefix, _hash(secret), role, customer_id, label))
    return f"ct_{prefix}_{secret}"


def revoke_key(conn: psycopg.Connection, prefix: str) -> bool:
    with conn.transaction():
        cur = conn.execute("UPDATE api_keys SET revoked_at = now() WHERE prefix = %s AND revoked_at IS NULL",
                           (prefix,))
    return cur.rowcount == 1


def authenticate(conn: psycopg.Connection, key: str) -> Principal | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "ct":
        return None
    _, prefix, secret = parts
    row = conn.execute("SELECT secret_hash, role, customer_id, cargotrace_customer_language(customer_id) FROM api_keys "
                       "WHERE prefix = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
                       (prefix,)).fetchone()
    if row is None or not hmac.compare_digest(row[0], _hash(secret)):
        return None
    return Principal(role=row[1], customer_id=row[2], prefix=prefix, language=row[3])
