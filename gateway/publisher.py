"""Publishes the outbox over MQTT, QoS 1, in seq order; an event leaves the outbox only on PUBACK.

paho-mqtt keeps its session in memory only, so after every (re)connect everything still in the
outbox is sent again from the start: a duplicate is harmless downstream ((gateway_id, seq) makes
ingest idempotent), a loss is not.
"""

from __future__ import annotations

import collections
import json
import logging
import ssl
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

from common.contract import GPS_SCHEMA, RFID_SCHEMA, STATE_SCHEMA, batch, iso_ms, topic
from common.failures import BrokerWatch, naming
from firmware_configs.profile import Gateway
from gateway.outbox import Outbox

log = logging.getLogger(__name__)
SOFTWARE = "cargotrace-gateway/0.1.0"
MAX_INFLIGHT_BATCHES = 8
# Connections the broker drops this soon after making them, this often in a minute: another client is
# taking this gateway's client id (the broker keeps the newest connection of a client id).
SHORT_LIVED_S, TAKEOVERS_PER_MINUTE, WARN_EVERY_S = 10.0, 3, 300.0


Address = tuple[str, int]


def address(broker_url: str) -> Address:
    url = urlparse(broker_url)
    return url.hostname or "127.0.0.1", url.port or (8883 if url.scheme == "mqtts" else 1883)


def client_for(cfg: Gateway, v5: bool = False) -> tuple[mqtt.Client, list[Address]]:
    """An MQTT client logging in as the gateway (its id, password and CA), and the brokers' host and port in
    the order to try them. Gateways speak MQTT 3.1.1; `v5` is for a check, as only 5 says why a publish was
    refused."""
    client = (mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.id, protocol=mqtt.MQTTv5) if v5 else
              mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.id, clean_session=True))
    if cfg.password_file:
        with naming("gateway.password_file in the profile", cfg.password_file):
            client.username_pw_set(cfg.id, Path(cfg.password_file).read_text().strip())
    if any(url.startswith("mqtts://") for url in cfg.brokers):
        with naming("gateway.tls_ca_file in the profile", cfg.tls_ca_file or "the system's CA certificates"):
            client.tls_set(ca_certs=cfg.tls_ca_file, cert_reqs=ssl.CERT_REQUIRED)
    return client, [address(url) for url in cfg.brokers]


def state_message(cfg: Gateway, state: str, config_version: str, devices: dict[str, str],
                  counters: dict[str, Any]) -> bytes:
    body = {"schema": STATE_SCHEMA, "gateway": cfg.id, "state": state, "ts": iso_ms(datetime.now(UTC)),
            "software": SOFTWARE, "config_version": config_version, "devices": dict(devices), "counters": counters}
    return json.dumps(body, separators=(",", ":")).encode()


class Publisher:
    def __init__(self, cfg: Gateway, outbox: Outbox, config_version: str = "") -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.config_version = config_version
        self.connected = threading.Event()
        self.devices: dict[str, str] = {}
        self.counters: dict[str, Any] = {}
        self.published_events = 0
        self._connects = 0  # bumped by every successful connect (network thread)
        self._seen_connects = 0  # what pump() last reacted to (main thread)
        self._inflight: list[tuple[mqtt.MQTTMessageInfo, list[int]]] = []  # awaiting PUBACK, oldest first
        self._cursor = 0  # highest seq handed to paho since the last connect
        self._connected_at: float | None = None
        self._short_lived: collections.deque[float] = collections.deque(maxlen=TAKEOVERS_PER_MINUTE)
        self._warned_at = -WARN_EVERY_S
        self.short_lived_connections = 0
        self.client, self._brokers = client_for(cfg)
        self._broker = 0  # index of the broker in use or being tried
        self._stopping = False
        self.client.max_inflight_messages_set(MAX_INFLIGHT_BATCHES * 2)
        # The gateway keeps retrying (its outbox holds the events): it says why, now and then.
        BrokerWatch(log, "check gateway.broker in the profile and that the broker runs", then=self._next_broker
                    ).attach(self.client)
        self.client.will_set(topic(cfg.id, "state"), self._state("offline"), qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def start(self) -> None:
        self.client.connect_async(*self._brokers[0], keepalive=30)
        self.client.loop_start()

    def _next_broker(self) -> None:
        """After a failed attempt or a lost connection, the next broker of the list (paho's thread, before it
        reconnects; paho's delay between attempts grows from 1 s to 30 s and resets once connected)."""
        if len(self._brokers) > 1 and not self._stopping:
            self._broker = (self._broker + 1) % len(self._brokers)
            self.client.connect_async(*self._brokers[self._broker], keepalive=30)

    def stop(self) -> None:
        self._stopping = True
        if self.connected.is_set():
            info = self.client.publish(topic(self.cfg.id, "state"), self._state("offline"), qos=1, retain=True)
            info.wait_for_publish(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()

    def _state(self, state: str) -> bytes:
        return state_message(self.cfg, state, self.config_version, self.devices,
                             {**self.counters, "outbox_depth": self.outbox.depth()})

    def publish_state(self) -> None:
        """Degraded while a device is down or the outbox's disk refuses writes."""
        down = any(v == "down" for v in self.devices.values()) or self.counters.get("outbox_storage_refused")
        self.client.publish(topic(self.cfg.id, "state"), self._state("degraded" if down else "online"),
                            qos=1, retain=True)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: Any, props: object) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        log.info("connected to %s:%s", *self._brokers[self._broker])
        self._connected_at = time.monotonic()
        self._connects += 1
        # Connected first: a device change the main loop makes from now on publishes its own state;
        # one made before is in this one.
        self.connected.set()
        self.publish_state()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: Any,
                       props: object) -> None:
        self.connected.clear()
        log.warning("disconnected from broker: %s", reason)
        now = time.monotonic()
        if self._connected_at is not None and now - self._connected_at < SHORT_LIVED_S:
            self.short_lived_connections += 1
            self._short_lived.append(now)
            if (len(self._short_lived) == TAKEOVERS_PER_MINUTE and now - self._short_lived[0] < 60
                    and now - self._warned_at >= WARN_EVERY_S):
                self._warned_at = now
                log.warning("the broker dropped this gateway's connection %d times within a minute, each moments "
                            "after it was made: is another box running as gateway %s? (the newest connection of "
                            "an id wins)", TAKEOVERS_PER_MINUTE, self.cfg.id)
        self._connected_at = None
        self._next_broker()

    def pump(self) -> int:
        """Acknowledge what the broker has PUBACKed, then hand it the next batches; returns events sent.

        Only the main loop calls this; paho's callbacks never touch the outbox, so no lock is shared
        with paho's network thread.
        """
        self._reap()
        if self._seen_connects != self._connects:  # a new connection: send all that is left again
            self._seen_connects = self._connects
            self._inflight.clear()
            self._cursor = 0
        sent = 0
        while self.connected.is_set() and len(self._inflight) < MAX_INFLIGHT_BATCHES:
            pending = self.outbox.batch(self._cursor, self.cfg.batch_events, self.cfg.batch_bytes)
            if not pending:
                break
            kind = pending[0].kind
            payload = batch(RFID_SCHEMA if kind == "rfid" else GPS_SCHEMA, self.cfg.id, [p.event for p in pending])
            info = self.client.publish(topic(self.cfg.id, kind), payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            self._inflight.append((info, [p.seq for p in pending]))
            self._cursor = pending[-1].seq
            sent += len(pending)
        return sent

    def _reap(self) -> None:
        done = [seqs for info, seqs in self._inflight if info.is_published()]
        if done:
            self._inflight = [(i, s) for i, s in self._inflight if not i.is_published()]
            acked = [seq for seqs in done for seq in seqs]
            self.outbox.ack(acked)
            self.published_events += len(acked)

    @property
    def inflight(self) -> int:
        return len(self._inflight)
