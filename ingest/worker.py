"""The ingest worker: MQTT → validated rows → database, acknowledging each message only after its commit.

Persistent session (MQTT v5 clean_start=False with a session expiry, or 3.1.1 clean_session=False)
so the broker keeps what arrives while the worker is down, and manual acknowledgement so a crash
between receipt and commit means redelivery, not loss. Several workers share the stream through a
shared subscription; each needs its own stable CARGOTRACE_INGEST_CLIENT_ID.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.contract import TOPIC_ROOT
from common.failures import BrokerWatch, PahoNoise
from common.metrics import Sample, serve
from common.settings import Settings
from common.stopping import stop_on_signals
from ingest.pipeline import PREFIX, Pipeline, Window
from ingest.writer import Batch

log = logging.getLogger(__name__)


class IngestWorker:
    def __init__(self, settings: Settings) -> None:
        if not settings.database_url or not settings.mqtt_url:
            raise ValueError("ingest needs CARGOTRACE_DATABASE_URL and CARGOTRACE_MQTT_URL")
        self.settings = settings
        # Bounded: when the database is slow the network thread blocks here and the broker holds
        # the rest (it never sends more than the receive maximum unacknowledged).
        self.inbox: queue.Queue[tuple[int, mqtt.MQTTMessage]] = queue.Queue(maxsize=settings.ingest_receive_maximum)
        # Packet ids are reused once acknowledged. A message received on an earlier connection is
        # redelivered on the next one with the same id; acknowledging both copies could acknowledge
        # an unrelated, uncommitted message that got the id in between. So only the copy received
        # on the current connection is acknowledged (the older one was written; rewriting is a no-op).
        self.connection = 0
        self.ack_lock = threading.Lock()
        self.pipeline = Pipeline(settings)
        self.subscribed = threading.Event()
        self.stopping = threading.Event()
        # For the lag metric: receipt time (paho's monotonic msg.timestamp) of the oldest message of
        # the batch being written.
        self.batch_since: float | None = None
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        url = urlparse(s.mqtt_url)
        if s.ingest_mqtt_v5:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=s.ingest_client_id,
                                 protocol=mqtt.MQTTv5, manual_ack=True)
        else:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=s.ingest_client_id,
                                 protocol=mqtt.MQTTv311, clean_session=False, manual_ack=True)
        if url.username:
            client.username_pw_set(unquote(url.username), unquote(url.password or ""))
        if url.scheme == "mqtts":
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.reconnect_delay_set(1, 30)
        client.enable_logger(log)
        log.addFilter(PahoNoise())
        BrokerWatch(log, "check CARGOTRACE_MQTT_URL and that the broker runs").attach(client)
        return client

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused ingest: %s", reason)
            return
        s = self.settings
        topic = f"{TOPIC_ROOT}/+/+"
        shared = s.ingest_mqtt_v5 and s.ingest_shared_group
        client.subscribe(f"$share/{s.ingest_shared_group}/{topic}" if shared else topic, qos=1)
        log.info("ingest connected")

    def _on_disconnect(self, *_: object) -> None:
        # Before paho reconnects: acknowledgements queued until now are discarded with the socket.
        with self.ack_lock:
            self.connection += 1

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        # Blocks the network thread while the queue is full (backpressure), but never past a stop:
        # a message dropped then was not acknowledged, so the broker delivers it again.
        while not self.stopping.is_set():
            try:
                self.inbox.put((self.connection, msg), timeout=0.5)
                return
            except queue.Full:
                continue

    def _on_subscribe(self, *_: object) -> None:
        log.info("ingest subscribed")  # the broker now keeps every message for this session
        self.subscribed.set()

    def run(self, stop: threading.Event) -> None:
        s = self.settings
        url = urlparse(s.mqtt_url)
        props = None
        if s.ingest_mqtt_v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.ingest_session_expiry_s
            props.ReceiveMaximum = s.ingest_receive_maximum
            self.client.connect_async(url.hostname, url.port or 1883, keepalive=30, clean_start=False,
                                      properties=props)
        else:
            self.client.connect_async(url.hostname, url.port or 1883, keepalive=30)
        self.client.loop_start()
        metrics = (serve(s.ingest_metrics_listen, self.samples, self.healthy, "CARGOTRACE_INGEST_METRICS_LISTEN")
                   if s.ingest_metrics_listen else None)
        try:
            while not stop.is_set():
                messages, batch = self._collect(stop)
                if not messages:
                    continue
                if self.pipeline.write(batch, len(messages), stop) is None:
                    return  # not acknowledged: the broker redelivers to the next worker
                self._acknowledge(messages)
                self.batch_since = None
        finally:
            self.stopping.set()
            self.client.disconnect()
            self.client.loop_stop()
            self.pipeline.close()
            if metrics:
                metrics.shutdown()
            log.info("ingest stopped: %s", json.dumps(dict(self.counters), sort_keys=True))

    @property
    def counters(self) -> Counter[str]:
        return self.pipeline.counters

    def healthy(self) -> bool:
        return self.client.is_connected() and self.subscribed.is_set() and self.pipeline.database_ok

    def lag_seconds(self) -> float:
        """Age of the oldest message received and not yet committed (0 when none waits)."""
        since = self.batch_since
        if since is None:
            with self.inbox.mutex:
                since = self.inbox.queue[0][1].timestamp if self.inbox.queue else None
        return max(0.0, time.monotonic() - since) if since is not None else 0.0

    def samples(self) -> list[Sample]:
        return [*self.pipeline.samples(),
                (PREFIX + "lag_seconds", {}, self.lag_seconds()),
                (PREFIX + "queued_messages", {}, self.inbox.qsize()),
                (PREFIX + "broker_connected", {}, float(self.client.is_connected()))]

    def _acknowledge(self, messages: list[tuple[int, mqtt.MQTTMessage]]) -> None:
        with self.ack_lock:
            for connection, msg in messages:  # in receipt order, as MQTT requires
                if connection == self.connection:
                    self.client.ack(msg.mid, msg.qos)
                else:
                    self.counters["redelivered after reconnect"] += 1

    def _collect(self, stop: threading.Event) -> tuple[list[tuple[int, mqtt.MQTTMessage]], Batch]:
        """Messages until the batch holds enough events or its time is up."""
        messages: list[tuple[int, mqtt.MQTTMessage]] = []
        batch = Batch()
        window = Window(self.settings)
        while not stop.is_set() and (timeout := window.wait()) > 0:
            try:
                connection, msg = self.inbox.get(timeout=timeout)
            except queue.Empty:
                if window.started:
                    break
                continue
            if self.batch_since is None:
                self.batch_since = msg.timestamp
            messages.append((connection, msg))
            window.add(self.pipeline.add(batch, msg.topic, msg.payload, retained=bool(msg.retain)))
        return messages, batch


def run(settings: Settings, stop: threading.Event | None = None) -> None:
    """The worker of the broker the settings name: the clustered one's JetStream consumer, else MQTT."""
    from ingest.jetstream_worker import JetStreamWorker  # nats-py: only where the cluster is used

    stop = stop or threading.Event()
    stop_on_signals(stop)
    (JetStreamWorker if settings.broker_url else IngestWorker)(settings).run(stop)
