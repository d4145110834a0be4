"""The ingest worker on the clustered broker: JetStream's durable pull consumer → database.

Every worker binds to the one consumer `cargotrace broker init` made, so N workers share the stream as
a work queue (each message goes to one of them). A message is acknowledged only after the transaction
holding its rows has committed; one not acknowledged within the consumer's ack wait (a worker killed
mid-batch, an acknowledgement lost with a node) is delivered again, to any worker, and the idempotent
write makes the second copy change nothing. While the database is away the worker keeps its batch and
tells the cluster it is still at work on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

from common.contract import topic_of
from common.metrics import Sample, serve
from common.settings import Settings
from ingest.jetstream import CONSUMER, REMEDY, STORED_PREFIX, STREAM, connect, consumer_exists
from ingest.pipeline import PREFIX, Pipeline, Window
from ingest.writer import Batch

log = logging.getLogger(__name__)
MAX_FETCH = 256  # messages asked for at once


class JetStreamWorker:
    def __init__(self, settings: Settings) -> None:
        if not settings.database_url or not settings.broker_url:
            raise ValueError("ingest on the cluster needs CARGOTRACE_DATABASE_URL and CARGOTRACE_BROKER_URL")
        self.settings = settings
        self.pipeline = Pipeline(settings)
        self.connected = False
        self.events_per_message = 10.0  # a running estimate, to ask for about a batch's worth of messages
        self.batch_since: float | None = None  # stream time (epoch s) of the oldest message being written

    @property
    def counters(self) -> dict[str, int]:
        return self.pipeline.counters

    def run(self, stop: threading.Event) -> None:
        s = self.settings
        metrics = (serve(s.ingest_metrics_listen, self.samples, self.healthy, "CARGOTRACE_INGEST_METRICS_LISTEN")
                   if s.ingest_metrics_listen else None)
        try:
            asyncio.run(self._run(stop))
        finally:
            self.pipeline.close()
            if metrics:
                metrics.shutdown()
            log.info("ingest stopped: %s", json.dumps(dict(self.counters), sort_keys=True))

    async def _run(self, stop: threading.Event) -> None:
        nc = await connect(self.settings.broker_url or "", attempts=-1, disconnected_cb=self._disconnected,
                           reconnected_cb=self._reconnected)
        self.connected = True
        loop = asyncio.get_running_loop()
        try:
            js = nc.jetstream(timeout=2)  # the API's answers, within a second when a majority runs
            waited = 0
            while not await consumer_exists(js):  # no majority of nodes yet: no JetStream answer
                if waited % 15 == 0:  # at once, then every 30 s
                    log.warning("the NATS cluster does not answer JetStream requests: %s; asking again", REMEDY)
                waited += 1
                await asyncio.sleep(2)
                if stop.is_set():
                    return
            sub = await js.pull_subscribe_bind(CONSUMER, STREAM)
            log.info("ingest bound to consumer %s of %s", CONSUMER, STREAM)
            while not stop.is_set():
                messages, batch = await self._collect(sub, stop)
                if not messages:
                    continue

                def still_at_work(messages: list[Msg] = messages) -> None:  # from the writing thread
                    for msg in messages:
                        asyncio.run_coroutine_threadsafe(msg.in_progress(), loop)

                written = await asyncio.to_thread(self.pipeline.write, batch, len(messages), stop, still_at_work)
                if written is None:
                    return  # not acknowledged: the cluster gives them to another worker
                for msg in messages:
                    await msg.ack()
                self.batch_since = None
                await self._flush(nc)
        finally:
            await nc.close()

    async def _collect(self, sub: object, stop: threading.Event) -> tuple[list[Msg], Batch]:
        """Messages until the batch holds enough events or its time is up."""
        messages: list[Msg] = []
        batch = Batch()
        window = Window(self.settings)
        while not stop.is_set() and (timeout := window.wait()) > 0.001:
            # Before the batch's first message, one is awaited (a fetch of more would wait for all of them
            # up to its timeout); after it, about what fills the batch, until the batch's time is up.
            wanted = (min(MAX_FETCH, max(1, math.ceil((window.limit - window.events) / self.events_per_message)))
                      if window.started else 1)
            try:
                got = await sub.fetch(wanted, timeout=timeout)  # type: ignore[attr-defined]
            except (TimeoutError, nats.errors.ConnectionClosedError, nats.js.errors.APIError) as exc:
                # No message in time; or no leader for the moment (a node lost: an election takes seconds)
                if not isinstance(exc, TimeoutError):
                    await asyncio.sleep(0.5)
                if window.started:
                    break
                continue
            for msg in got:
                meta = msg.metadata
                if self.batch_since is None:
                    self.batch_since = meta.timestamp.timestamp()
                if meta.num_delivered > 1:
                    self.counters["redelivered"] += 1
                n = self.pipeline.add(batch, topic_of(msg.subject.removeprefix(STORED_PREFIX)), msg.data)
                self.events_per_message += (n - self.events_per_message) / 16
                window.add(n)
                messages.append(msg)
        return messages, batch

    @staticmethod
    async def _flush(nc: nats.NATS) -> None:
        """The acknowledgements on their way before the next batch; one lost with a node means a redelivery."""
        try:
            await nc.flush(timeout=5)
        except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError, nats.errors.FlushTimeoutError):
            log.warning("acknowledgements not confirmed sent; their messages may come again (harmless)")

    async def _disconnected(self) -> None:
        self.connected = False
        log.warning("lost the NATS cluster; reconnecting to the next node")

    async def _reconnected(self) -> None:
        self.connected = True
        log.info("reconnected to the NATS cluster")

    def healthy(self) -> bool:
        return self.connected and self.pipeline.database_ok

    def lag_seconds(self) -> float:
        """Age in the stream of the oldest message being written (0 when none is)."""
        since = self.batch_since
        return max(0.0, time.time() - since) if since is not None else 0.0

    def samples(self) -> list[Sample]:
        return [*self.pipeline.samples(),
                (PREFIX + "lag_seconds", {}, self.lag_seconds()),
                (PREFIX + "broker_connected", {}, float(self.connected))]
