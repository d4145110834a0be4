"""Live updates over Server-Sent Events, fanned out from PostgreSQL LISTEN/NOTIFY.

Each API process keeps one listening connection (a thread). Whatever process committed a change,
every API process hears it, reads what changed once, and hands it to its own connected clients
whose filter matches. A client that falls too far behind is dropped; on reconnecting it first gets
the current state, so nothing it needs is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from common.failures import describe
from locales import DEFAULT
from storage.vocabulary import CHANNELS, EVENTS_CHANNEL, EXCEPTIONS_CHANNEL, STATUS_CHANNEL
from tracking_api import queries, wording
from tracking_api.deps import tenant
from tracking_api.keys import Principal
from tracking_api.models import ExceptionNotice, RouteException, Shipment, VehiclePosition

log = logging.getLogger(__name__)
QUEUE_SIZE = 256
_READER = Principal(role="dispatcher", customer_id=None, prefix="live")


@dataclass(frozen=True, slots=True)
class Change:
    event: str  # status | position | exception
    data: dict[str, Any]
    customer_id: str | None = None
    external_ref: str | None = None
    vehicle_id: str | None = None
    shape: type[BaseModel] | None = None  # the model its data is written as; by its event when None
    # What a customer sees of an exception (the database's cargotrace_customer_exception, as the API and
    # customers' webhooks show it); None: only staff see it.
    customer_data: dict[str, Any] | None = None


# The events' data, written by the models of the JSON answers so a page reads both alike.
SHAPES: dict[str, type[BaseModel]] = {"status": Shipment, "position": VehiclePosition, "exception": RouteException}


@dataclass(eq=False)
class Subscription:
    """All changes (customer_id None: staff), or one customer's, optionally one shipment's. A customer
    sees its shipment's vehicle only while the shipment is on it."""

    customer_id: str | None
    external_ref: str | None = None
    language: str = DEFAULT  # of the texts beside the machine words (tracking_api/wording.py)
    vehicle_id: str | None = None
    carrying: bool = False
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    queue: asyncio.Queue[Change | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def follow(self, shipment: dict[str, Any]) -> None:
        self.vehicle_id = shipment["vehicle_id"]
        self.carrying = shipment["status"] in ("in_transit", "arrived")

    def wants(self, change: Change) -> bool:
        if self.customer_id is None:
            return True
        if change.event == "position":
            return self.carrying and change.vehicle_id == self.vehicle_id
        if change.event == "exception" and change.customer_data is None:
            return False
        return change.customer_id == self.customer_id and self.external_ref in (None, change.external_ref)

    def view(self, change: Change) -> Change:
        """Customers see an exception's kind and state, not the dispatcher's evidence and notes."""
        if self.customer_id is None or change.event != "exception" or change.customer_data is None:
            return change
        return Change(change.event, change.customer_data, change.customer_id, change.external_ref,
                      shape=ExceptionNotice)


class Live:
    def __init__(self, listen_url: str, pool: ConnectionPool) -> None:
        self.listen_url = listen_url
        self.pool = pool
        self.subscriptions: set[Subscription] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.listening = threading.Event()
        self.thread = threading.Thread(target=self._run, name="live-updates", daemon=True)
        self.position_cursor = ("0", 0)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)

    async def stream(self, customer_id: str | None, external_ref: str | None, first: list[Change],
                     language: str) -> AsyncIterator[dict[str, str]]:
        """The SSE events of one client: `first` (the current state), then every matching change, with
        their texts in `language`."""
        sub = Subscription(customer_id, external_ref, language)
        for change in first:
            if change.event == "status":
                sub.follow(change.data)
        with self.lock:
            self.subscriptions.add(sub)
        try:
            for change in first:
                yield _sse(change, language)
            while (change := await sub.queue.get()) is not None:
                if change.event == "status" and sub.external_ref is not None:
                    sub.follow(change.data)
                yield _sse(sub.view(change), language)
        finally:
            with self.lock:
                self.subscriptions.discard(sub)

    def _run(self) -> None:
        backoff = 0.5
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.listen_url, autocommit=True) as listener:
                    for channel in CHANNELS:
                        listener.execute(f"LISTEN {channel}")
                    # Fixes of transactions still running or yet to come: everything from now on.
                    xmin = listener.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()
                    self.position_cursor = (xmin[0], 0)  # type: ignore[index]
                    self.listening.set()
                    backoff = 0.5
                    while not self.stop.is_set():
                        notes = list(listener.notifies(timeout=0.5, stop_after=1))
                        if notes:  # take whatever else is already waiting: one read serves them all
                            notes += listener.notifies(timeout=0.01, stop_after=1000)
                            self._publish(notes)
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("live updates: %s; retrying in %.1f s", describe(exc) or exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 15.0)

    def _publish(self, notes: list[psycopg.Notify]) -> None:
        demand_ids = {int(n.payload) for n in notes if n.channel == STATUS_CHANNEL}
        exception_ids = {json.loads(n.payload)["id"] for n in notes if n.channel == EXCEPTIONS_CHANNEL}
        fixes = any(n.channel == EVENTS_CHANNEL for n in notes)
        changes: list[Change] = []
        with tenant(self.pool, _READER) as conn:
            changes += _status_changes(conn, demand_ids)
            changes += _exception_changes(conn, exception_ids)
            if fixes:
                changes += self._position_changes(conn)
        with self.lock:
            subscriptions = list(self.subscriptions)
        for sub in subscriptions:
            for change in changes:
                if sub.wants(change):
                    sub.loop.call_soon_threadsafe(_offer, sub, change)

    def _position_changes(self, conn: psycopg.Connection) -> list[Change]:
        """The newest fix of each vehicle that reported since the last look."""
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "SELECT DISTINCT ON (vehicle_id) vehicle_id, ts, lat, lon, speed_kmh, course_deg, "
                "max(txid) OVER () ::text AS txid, max(id) OVER () AS id FROM positions "
                "WHERE (txid, id) > (%s::xid8, %s) ORDER BY vehicle_id, ts DESC", self.position_cursor).fetchall()
        if rows:
            self.position_cursor = (rows[0]["txid"], rows[0]["id"])
        return [Change("position", {k: v for k, v in row.items() if k not in ("txid", "id")},
                       vehicle_id=row["vehicle_id"]) for row in rows]


def _offer(sub: Subscription, change: Change) -> None:
    try:
        sub.queue.put_nowait(change)
    except asyncio.QueueFull:  # too slow a client: end its stream; it reconnects and gets the state
        sub.queue.get_nowait()
        sub.queue.put_nowait(None)


def _status_changes(conn: psycopg.Connection, demand_ids: set[int]) -> list[Change]:
    if not demand_ids:
        return []
    rows = conn.execute("SELECT customer_id, external_ref FROM demands WHERE id = ANY(%s)",
                        (list(demand_ids),)).fetchall()
    changes = [shipment_change(conn, customer_id, ref) for customer_id, ref in rows]
    return [change for change in changes if change.data]  # a demand deleted since: nothing to show


def shipment_change(conn: psycopg.Connection, customer_id: str, external_ref: str) -> Change:
    data = queries.shipment(conn, customer_id, external_ref) or {}
    return Change("status", data, customer_id=customer_id, external_ref=external_ref,
                  vehicle_id=data.get("vehicle_id"))


def _exception_changes(conn: psycopg.Connection, exception_ids: set[int]) -> list[Change]:
    changes = []
    for exception_id in sorted(exception_ids):
        for row in queries.exceptions(conn, exception_id=exception_id, limit=1):
            changes.append(Change("exception", row, customer_id=row["customer_id"], external_ref=row["external_ref"],
                                  vehicle_id=row["vehicle_id"],
                                  customer_data=queries.customer_exception(conn, exception_id)))
    return changes


# How each event's data gets its texts for people.
WORDING = {"status": wording.shipment, "exception": wording.exception}


def _sse(change: Change, language: str) -> dict[str, str]:
    shape = change.shape or SHAPES[change.event]
    worded = WORDING[change.event](change.data, language) if change.event in WORDING else change.data
    return {"event": change.event, "data": shape.model_validate(worded).model_dump_json(by_alias=True)}
