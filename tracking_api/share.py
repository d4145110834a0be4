"""Share links: a signed, expiring token that opens one shipment read-only, without an API key.

Token = base64url(JSON claims) "." base64url(HMAC-SHA256(secret, claims)). The secret lives in the
database (`signing_keys`, migration 0004) so every API process signs and verifies alike; rotating it
there revokes every link at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

_KEY = "share_links"


@dataclass(frozen=True, slots=True)
class SharedShipment:
    customer_id: str
    external_ref: str
    expires_at: datetime


class InvalidToken(ValueError):
    pass


class ExpiredToken(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret(conn: psycopg.Connection) -> bytes:
    row = conn.execute("SELECT secret FROM signing_keys WHERE name = %s", (_KEY,)).fetchone()
    if row is None:
        raise RuntimeError("no share link signing key: run `cargotrace db migrate`")
    return row[0].encode()


def sign(conn: psycopg.Connection, customer_id: str, external_ref: str, valid_for: timedelta) -> tuple[str, datetime]:
    expires = (datetime.now(UTC) + valid_for).replace(microsecond=0)
    claims = _b64(json.dumps({"c": customer_id, "r": external_ref, "e": int(expires.timestamp())},
                             separators=(",", ":")).encode())
    mac = hmac.new(_secret(conn), claims.encode(), hashlib.sha256).digest()
    return f"{claims}.{_b64(mac)}", expires


def verify(conn: psycopg.Connection, token: str) -> SharedShipment:
    claims, _, mac = token.partition(".")
    try:
        expected = hmac.new(_secret(conn), claims.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_unb64(mac), expected):
            raise InvalidToken("bad signature")
        body = json.loads(_unb64(claims))
        shared = SharedShipment(str(body["c"]), str(body["r"]), datetime.fromtimestamp(int(body["e"]), UTC))
    # binascii.Error and JSON errors are ValueErrors; an expiry beyond the calendar overflows.
    except (ValueError, KeyError, TypeError, OverflowError, OSError) as exc:
        raise InvalidToken(str(exc)) from None
    if shared.expires_at <= datetime.now(UTC):
        raise ExpiredToken(f"expired at {shared.expires_at.isoformat()}")
    return shared
