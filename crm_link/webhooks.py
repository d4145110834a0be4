"""Outbound webhooks (Standard Webhooks 1.0): URL vetting, secrets and the delivery worker.

Deliveries are queued by triggers (migration 0006) in the transaction of the change they report. A
worker claims due deliveries with FOR UPDATE SKIP LOCKED and leases them by moving next_attempt_at
forward before sending, so several workers never send one delivery at once and a worker that dies
mid-send only delays it by the lease. Receivers deduplicate by the webhook-id header, which stays the
same across retries.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
import psycopg
from standardwebhooks import Webhook

from common.failures import describe
from common.settings import Settings

log = logging.getLogger(__name__)

# Seconds before attempt n+1 after failed attempt n: exponential, then twice a day; about three days
# in all, then the delivery is dead.
RETRY_DELAYS_S: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600,
                                     12 * 3600, 12 * 3600, 12 * 3600, 12 * 3600, 12 * 3600)
MAX_RETRY_AFTER_S = 24 * 3600
BATCH = 10


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


_CLAIM = """
UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => %s), attempts = d.attempts + 1
FROM (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) due, webhook_subscriptions s
WHERE d.id = due.id AND s.id = d.subscription_id
RETURNING d.id, d.webhook_id, d.payload, d.attempts, s.id, s.url, s.secret, s.active
"""


class Sender:
    def __init__(self, settings: Settings, delays: tuple[float, ...] = RETRY_DELAYS_S) -> None:
        self.settings, self.delays = settings, delays
        # Redirects are not followed: one could lead to an address check_url would refuse.
        self.client = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def send_due(self, conn: psycopg.Connection, limit: int = BATCH) -> int:
        """Send the deliveries due now; returns how many were attempted."""
        # The lease outlasts the batch even if every request runs into its connect, write and read
        # timeouts, so no other worker takes over a delivery this one is still sending.
        lease_s = limit * 3 * self.settings.webhook_timeout_s + 60
        with conn.transaction():
            claimed = conn.execute(_CLAIM, (lease_s, limit)).fetchall()
        for delivery_id, webhook_id, payload, attempts, sub_id, url, secret, active in claimed:
            outcome = self._send(webhook_id, payload, url, secret) if active else Outcome(None, "subscription disabled")
            with conn.transaction():
                self._record(conn, delivery_id, attempts, sub_id, active, outcome)
        return len(claimed)

    def _send(self, webhook_id: str, payload: dict, url: str, secret: str) -> Outcome:
        try:
            check_url(url, self.settings)  # again at send time: DNS may have changed since subscription
        except UnsafeURL as exc:
            return Outcome(None, str(exc))
        body = json.dumps(payload, separators=(",", ":"))
        now = datetime.now(UTC)
        headers = {"content-type": "application/json", "webhook-id": webhook_id,
                   "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": Webhook(secret).sign(webhook_id, now, body)}
        try:
            response = self.client.post(url, content=body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:500])
        if response.is_success:
            return Outcome(response.status_code, None)
        return Outcome(response.status_code, f"HTTP {response.status_code}",
                       retry_after(response.headers.get("retry-after"), datetime.now(UTC)))

    def _record(self, conn: psycopg.Connection, delivery_id: int, attempts: int, sub_id: int, active: bool,
                outcome: Outcome) -> None:
        if outcome.status is not None and outcome.error is None:
            conn.execute("UPDATE webhook_deliveries SET state = 'delivered', last_status = %s, last_error = NULL "
                         "WHERE id = %s", (outcome.status, delivery_id))
            return
        gone = outcome.status == 410
        if gone:  # the receiver says the endpoint is gone for good
            conn.execute("UPDATE webhook_subscriptions SET active = false, disabled_reason = '410 Gone' "
                         "WHERE id = %s", (sub_id,))
        if gone or not active or attempts > len(self.delays):
            conn.execute("UPDATE webhook_deliveries SET state = 'dead', last_status = %s, last_error = %s "
                         "WHERE id = %s", (outcome.status, outcome.error, delivery_id))
            return
        delay = max(self.delays[attempts - 1], min(outcome.retry_after_s or 0.0, MAX_RETRY_AFTER_S))
        log.info("webhook delivery %s failed (%s); attempt %d in %.0f s", delivery_id, outcome.error,
                 attempts + 1, delay)
        conn.execute("UPDATE webhook_deliveries SET last_status = %s, last_error = %s, "
                     "next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
                     (outcome.status, outcome.error, delay, delivery_id))


def resend(conn: psycopg.Connection, delivery_id: int) -> bool:
    """Queue a delivery again now with a fresh retry schedule (same webhook-id); False if not visible."""
    return conn.execute("UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = now() "
                        "WHERE id = %s RETURNING id", (delivery_id,)).fetchone() is not None


def run(settings: Settings, stop: threading.Event, delays: tuple[float, ...] = RETRY_DELAYS_S) -> None:
    """Send due deliveries until stopped; waits a poll period when there is nothing due."""
    sender = Sender(settings, delays)
    backoff = 0.5
    try:
        while not stop.is_set():
            try:
                with psycopg.connect(settings.database_url, autocommit=True) as conn:
                    backoff = 0.5
                    while not stop.is_set():
                        if sender.send_due(conn) == 0:
                            stop.wait(settings.webhook_poll_seconds)
            except psycopg.OperationalError as exc:
                log.warning("webhooks: database unavailable: %s; retrying in %.1f s", describe(exc) or exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 15.0)
    finally:
        sender.close()
