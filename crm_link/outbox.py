"""The delivery worker of the outbox (webhook_deliveries): sends each due delivery over its subscription's
channel — Standard Webhooks JSON for systems (crm_link/webhooks.py), a group robot (crm_link/robots.py) or
an email (crm_link/mail.py) for people — and records the outcome, with one retry schedule for all.

Deliveries are queued by triggers (migration 0006) in the transaction of the change they report, one per
matching subscription. A worker claims due deliveries with FOR UPDATE SKIP LOCKED and leases them by
moving next_attempt_at forward before sending, so several workers never send one delivery at once and a
worker that dies mid-send only delays it by the lease. A message for people is rendered at send time, in
the subscription's language or else its customer's (crm_link/notices.py).
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.rows import class_row

from common.failures import describe
from common.settings import Settings
from crm_link import mail, notices, robots
from crm_link.webhooks import Outcome, UnsafeURL, check_url, post, send_signed

log = logging.getLogger(__name__)

# Seconds before attempt n+1 after failed attempt n: exponential, then twice a day; about three days
# in all, then the delivery is dead.
RETRY_DELAYS_S: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600,
                                     12 * 3600, 12 * 3600, 12 * 3600, 12 * 3600, 12 * 3600)
MAX_RETRY_AFTER_S = 24 * 3600
BATCH = 10

_CLAIM = """
UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => %s), attempts = d.attempts + 1
FROM (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) due,
     webhook_subscriptions s LEFT JOIN customers c ON c.id = s.customer_id
WHERE d.id = due.id AND s.id = d.subscription_id
RETURNING d.id, d.webhook_id, d.event_type, d.payload, d.attempts, s.id AS subscription_id, s.active, s.channel,
          s.url, s.secret, s.email, s.customer_id, coalesce(s.language, c.language, 'zh-CN') AS language
"""


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed delivery with what its subscription says of where and how to send it."""

    id: int
    webhook_id: str
    event_type: str
    payload: dict[str, Any]
    attempts: int
    subscription_id: int
    active: bool
    channel: str
    url: str | None
    secret: str | None
    email: str | None
    customer_id: str | None
    language: str


def vet_robot_url(channel: str, url: str, settings: Settings) -> None:
    """A robot's URL: https on its vendor's hosts (crm_link/robots.py HOSTS), unless the settings allow
    any host; and, like every URL sent to, no non-public address (webhooks.check_url)."""
    if not settings.notify_any_host:
        try:
            parts = urlsplit(url)
            vendor = parts.scheme == "https" and (parts.hostname or "").lower() in robots.HOSTS[channel]
        except ValueError:
            vendor = False
        if not vendor:
            raise UnsafeURL(f"a {channel} robot's URL is https://{' or https://'.join(robots.HOSTS[channel])}/…")
    check_url(url, settings)


class WithoutRequestLines(logging.Filter):
    """httpx logs each request's URL at INFO; a robot's URL carries its key or token, so those lines go."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("HTTP Request:")


REQUEST_LINES = WithoutRequestLines()


class Sender:
    def __init__(self, settings: Settings, delays: tuple[float, ...] = RETRY_DELAYS_S) -> None:
        self.settings, self.delays = settings, delays
        logging.getLogger("httpx").addFilter(REQUEST_LINES)  # the same filter once, however many senders
        # Redirects are not followed: one could lead to an address check_url would refuse.
        self.client = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def send_due(self, conn: psycopg.Connection, limit: int = BATCH) -> int:
        """Send the deliveries due now; returns how many were attempted."""
        # The lease outlasts the batch even if every request runs into its connect, write and read
        # timeouts, so no other worker takes over a delivery this one is still sending.
        lease_s = limit * 3 * self.settings.webhook_timeout_s + 60
        with conn.transaction(), conn.cursor(row_factory=class_row(Due)) as cur:
            claimed = cur.execute(_CLAIM, (lease_s, limit)).fetchall()
        for due in claimed:
            outcome = self._send(conn, due) if due.active else Outcome(None, "subscription disabled")
            with conn.transaction():
                self._record(conn, due, outcome)
        return len(claimed)

    def _send(self, conn: psycopg.Connection, due: Due) -> Outcome:
        if due.channel == "webhook":
            assert due.url and due.secret
            return send_signed(self.client, self.settings, due.webhook_id, due.payload, due.url, due.secret)
        data = due.payload["data"]
        shipment = notices.facts(conn, due.customer_id, data, self.settings.time_zone)
        notice = notices.render(due.event_type, data, shipment, due.language, self.settings.public_url)
        if due.channel == "email":
            return self._mail(due, notice)
        assert due.url
        return _redacted(self._robot(due, notice, due.url), due)

    def _robot(self, due: Due, notice: notices.Notice, url: str) -> Outcome:
        try:
            vet_robot_url(due.channel, url, self.settings)
        except UnsafeURL as exc:
            return Outcome(None, str(exc))
        request = robots.ROBOTS[due.channel](notice, url, due.secret, datetime.now(UTC))
        outcome, response = post(self.client, self.settings, request.url,
                                 json.dumps(request.body, ensure_ascii=False).encode(), {})
        if response is None or outcome.error:
            return outcome
        try:
            refused = robots.refusal(response.json())
        except ValueError:
            refused = "the reply is not JSON"
        return Outcome(response.status_code, refused)  # an HTTP 200 the robot refused is a failure

    def _mail(self, due: Due, notice: notices.Notice) -> Outcome:
        assert due.email
        try:
            mail.send(self.settings, mail.message(notice, due.email, self.settings.smtp_from, due.webhook_id,
                                                  due.language))
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:500])
        return Outcome(250, None)

    def _record(self, conn: psycopg.Connection, due: Due, outcome: Outcome) -> None:
        if outcome.status is not None and outcome.error is None:
            conn.execute("UPDATE webhook_deliveries SET state = 'delivered', last_status = %s, last_error = NULL "
                         "WHERE id = %s", (outcome.status, due.id))
            return
        gone = outcome.status == 410
        if gone:  # the receiver says the endpoint is gone for good
            conn.execute("UPDATE webhook_subscriptions SET active = false, disabled_reason = '410 Gone' "
                         "WHERE id = %s", (due.subscription_id,))
        if gone or not due.active or due.attempts > len(self.delays):
            conn.execute("UPDATE webhook_deliveries SET state = 'dead', last_status = %s, last_error = %s "
                         "WHERE id = %s", (outcome.status, outcome.error, due.id))
            return
        delay = max(self.delays[due.attempts - 1], min(outcome.retry_after_s or 0.0, MAX_RETRY_AFTER_S))
        log.info("%s delivery %s failed (%s); attempt %d in %.0f s", due.channel, due.id, outcome.error,
                 due.attempts + 1, delay)
        conn.execute("UPDATE webhook_deliveries SET last_status = %s, last_error = %s, "
                     "next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
                     (outcome.status, outcome.error, delay, due.id))


def _redacted(outcome: Outcome, due: Due) -> Outcome:
    """A robot's error as stored, logged and listed: without its URL's key or token or its secret."""
    if outcome.error is None:
        return outcome
    error = outcome.error
    for secret in (due.url, due.secret):
        if secret:
            error = error.replace(secret, robots.masked(secret) if secret == due.url else "***")
    return Outcome(outcome.status, error, outcome.retry_after_s)


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
                log.warning("outbox: database unavailable: %s; retrying in %.1f s", describe(exc) or exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 15.0)
    finally:
        sender.close()
