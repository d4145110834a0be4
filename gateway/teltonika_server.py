"""A Teltonika endpoint inside the gateway (Codec 8 and 8 Extended over TCP): a tracker sends its IMEI,
which is accepted when the profile maps it to a vehicle, then AVL data packets, each answered with the
number of records taken; a record with a position becomes a fix of that vehicle. IO elements are not
carried on: the contract's GPS events hold positions."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

from device_drivers import teltonika as t
from device_drivers.types import Fix
from firmware_configs.profile import Teltonika
from gateway.tcp_endpoint import READ_BYTES, TcpEndpoint

log = logging.getLogger(__name__)
DEVICE = "teltonika"


class TeltonikaServer(TcpEndpoint):
    def __init__(self, cfg: Teltonika, out: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
        super().__init__(DEVICE, cfg.listen, out, stop)
        self.devices = dict(cfg.devices)

    async def converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder, vehicle = t.TeltonikaDecoder(), None
        try:
            while data := await reader.read(READ_BYTES):
                items = decoder.feed(data)
                if decoder.imei is None and decoder.bad_frames:
                    self.counters["refused: no IMEI"] += 1  # closed unanswered: the device keeps its records
                    return
                replies = []
                for item in items:
                    if isinstance(item, t.Imei):
                        vehicle = self.devices.get(item.imei)
                        if vehicle is None:
                            self.counters["refused: unknown device"] += 1
                            log.warning("teltonika: device %s is not in this gateway's profile", item.imei)
                            writer.write(t.REFUSE)
                            await writer.drain()
                            return
                        replies.append(t.ACCEPT)
                        continue
                    assert vehicle is not None  # the decoder yields packets only after the IMEI, refused if unknown
                    for record in item.records:
                        self.counters["records"] += 1
                        if record.fixed:
                            self.fix(vehicle, _fix(record))
                        else:
                            self.counters["records without a fix"] += 1
                    replies.append(len(item.records).to_bytes(4, "big"))
                if not await self.answer_when_stored(writer, replies):
                    return
        finally:
            self.counters.update({f"bad frame: {r}": n for r, n in decoder.bad_frames.items()})


def _fix(record: t.Record) -> Fix:
    return Fix(ts=record.ts, lat=record.lat, lon=record.lon, speed_kmh=float(record.speed_kmh),
               course_deg=float(record.angle_deg), sats=record.satellites, alt_m=float(record.altitude_m))
