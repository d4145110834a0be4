"""Outbound webhooks (Standard Webhooks 1.0): URL vetting (SSRF), secrets, the signed POST and re-sending.
The delivery worker that sends the outbox, over these and the channels for people, is crm_link/outbox.py.
Receivers deduplicate by the webhook-id header, which stays the same across retries.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
import psycopg
from standardwebhooks import Webhook

from common.settings import Settings


class UnsafeURL(ValueError):
    """The URL is not http(s) or reaches an address the settings do not allow."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str, settings: Settings) -> None:
    """Refuse URLs whose host resolves to a non-public address (SSRF), unless allowed by the settings.
    Every address the name resolves to must pass: one private answer is enough to refuse."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise UnsafeURL("the URL must not carry credentials")
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"the host does not resolve: {exc}") from None
    for info in infos:
        for address in reached(ipaddress.ip_address(str(info[4][0]).split("%")[0])):
            allowed = settings.webhook_allow_private or any(address in n for n in settings.webhook_allowed_networks)
            if not (address.is_global or allowed):
                raise UnsafeURL(f"the host resolves to the non-public address {address}")


# NAT64: the well-known prefix carries an IPv4 address in its last 32 bits; the local-use one is local.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def reached(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address |
                                                                           ipaddress.IPv6Address]:
    """The addresses a connection to `address` ends up at: itself, and the IPv4 address an IPv6 one
    carries (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64), which each must be public too."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address.ipv4_mapped:
        return [address.ipv4_mapped]
    low = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    carried = [address.sixtofour, address.teredo[1] if address.teredo else None,
               low if (int(address) >> 32 == 0 and int(address) > 1) or address in NAT64 else None,
               ipaddress.IPv4Address("0.0.0.0") if address in LOCAL_NAT64 else None]
    return [address, *(a for a in carried if a is not None)]


@dataclass
class Outcome:
    status: int | None
    error: str | None
    retry_after_s: float | None = None


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # delta-seconds are ASCII digits ("¹".isdigit() is True too)
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def resend(conn: psycopg.Connection, delivery_id: int) -> bool:
    """Queue a delivery again now with a fresh retry schedule (same webhook-id); False if not visible."""
    return conn.execute("UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = now() "
                        "WHERE id = %s RETURNING id", (delivery_id,)).fetchone() is not None


def post(client: httpx.Client, settings: Settings, url: str, body: bytes,
         headers: dict[str, str]) -> tuple[Outcome, httpx.Response | None]:
    """POST to a subscriber's URL, vetted again at send time (DNS may have changed since it subscribed);
    the outcome by the HTTP answer alone, and the answer for a channel that reads its body too."""
    try:
        check_url(url, settings)
    except UnsafeURL as exc:
        return Outcome(None, str(exc)), None
    try:
        response = client.post(url, content=body, headers={"content-type": "application/json", **headers})
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500]), None
    if response.is_success:
        return Outcome(response.status_code, None), response
    return Outcome(response.status_code, f"HTTP {response.status_code}",
                   retry_after(response.headers.get("retry-after"), datetime.now(UTC))), response


def send_signed(client: httpx.Client, settings: Settings, webhook_id: str, payload: dict, url: str,
                secret: str) -> Outcome:
    """One Standard Webhooks 1.0 delivery: the JSON payload signed with the subscription's secret."""
    body = json.dumps(payload, separators=(",", ":"))
    now = datetime.now(UTC)
    return post(client, settings, url, body.encode(), {
        "webhook-id": webhook_id, "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, now, body)})[0]
