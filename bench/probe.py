"""The freshness probe: a shipment's SSE stream from the API, open before the one fix that changes its status
is published, and the time from that publish to the `status` event announcing the change."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from bench.fleet import fix
from common.contract import GPS_SCHEMA, batch, topic


class Stream:
    """`GET /v1/shipments/{ref}/stream`, read in a task: `opened` once the first `status` (the shipment's state
    at subscription) arrived, `arrived` the perf_counter time of the first `status` event with `wanted`."""

    def __init__(self, client: httpx.AsyncClient, ref: str, key: str, wanted: str) -> None:
        self.wanted = wanted
        self.opened, self.done = asyncio.Event(), asyncio.Event()
        self.arrived: float | None = None
        self.task = asyncio.create_task(self._read(client, ref, key))

    async def _read(self, client: httpx.AsyncClient, ref: str, key: str) -> None:
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        async with client.stream("GET", f"/v1/shipments/{ref}/stream", headers=headers) as response:
            if response.status_code != 200:
                raise SystemExit(f"{ref}'s stream: HTTP {response.status_code} {(await response.aread())[:200]!r}")
            event, data = "message", []
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    if event == "status":
                        self._status(json.loads("\n".join(data)))
                    if self.done.is_set():
                        return
                    event, data = "message", []

    def _status(self, shipment: dict[str, Any]) -> None:
        if not self.opened.is_set():
            self.opened.set()
        elif shipment["status"] == self.wanted:
            self.arrived = time.perf_counter()
            self.done.set()

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):  # a stream the API ended counts as unarrived
            await self.task


class Sender:
    """A fleet gateway (one MQTT user for many vehicles' terminals) publishing single fixes, each timed."""

    def __init__(self, port: int, gateway: str, password: str) -> None:
        self.gateway = gateway
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=gateway)
        self.client.username_pw_set(gateway, password)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.seq = time.time_ns() // 1000
        self.sent: list[mqtt.MQTTMessageInfo] = []
        self.sent_at: list[tuple[float, float]] = []  # (perf_counter, wall clock) of each, just before it left

    def send(self, vehicle: str, lat: float, lon: float) -> None:
        """Publish one fix of `vehicle` now."""
        self.seq += 1
        wall = time.time()
        body = batch(GPS_SCHEMA, self.gateway, [fix(self.seq, vehicle, wall, lat, lon, 30.0, 90.0)])
        self.sent_at.append((time.perf_counter(), wall))
        self.sent.append(self.client.publish(topic(self.gateway, "gps"), body, qos=1))

    def acknowledged(self) -> int:
        return sum(info.is_published() for info in self.sent)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
