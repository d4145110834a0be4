"""A JT/T 808 platform endpoint inside the gateway: the fleet's terminals connect over TCP, register,
authenticate and report their positions; each report becomes a fix of the vehicle its terminal is
mapped to, and every message is answered as the standard says.

Authentication codes are derived from the terminal's number (HMAC with the profile's secret), so a
terminal registered before a restart still authenticates after it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from device_drivers import jt808 as j
from device_drivers.types import Fix
from firmware_configs.profile import Jt808
from gateway.tcp_endpoint import READ_BYTES, TcpEndpoint

log = logging.getLogger(__name__)
DEVICE = "jt808"


@dataclass
class Session:
    """What the endpoint knows of one connection."""

    phone: str | None = None
    authenticated: bool = False
    serial: int = 0  # the platform's own message serial on this connection

    def next_serial(self) -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        return self.serial


class Jt808Server(TcpEndpoint):
    def __init__(self, cfg: Jt808, gateway_id: str, out: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
        super().__init__(DEVICE, cfg.listen, out, stop)
        self.cfg = cfg
        self.key = f"{gateway_id}\0{cfg.secret}".encode()
        self.terminals = {phone.zfill(20): vehicle for phone, vehicle in cfg.terminals.items()}

    def code(self, phone: str) -> str:
        return hmac.new(self.key, phone.zfill(20).encode(), hashlib.sha256).hexdigest()[:16]

    def vehicle(self, phone: str) -> str | None:
        return self.terminals.get(phone.zfill(20))

    async def converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder, reassembly, session = j.Jt808Decoder(), j.Reassembly(), Session()
        try:
            while data := await reader.read(READ_BYTES):
                replies = [reply for message in decoder.feed(data) if (whole := reassembly.add(message)) is not None
                           for reply in self.answer(whole, session)]
                if not await self.answer_when_stored(writer, replies):
                    return
        finally:
            self.counters.update({f"bad frame: {r}": n for r, n in decoder.bad_frames.items()})

    def answer(self, message: j.Message, session: Session) -> list[bytes]:
        """The replies to one terminal message; fixes of its location reports go on the queue."""
        h = message.header
        if (2019 if h.is_2019 else 2013) not in self.cfg.versions:
            self.counters["refused: protocol version"] += 1
            return [self._reply(h, session, j.PLATFORM_RESPONSE, j.platform_response(h, j.NOT_SUPPORTED))]
        if session.phone not in (None, h.phone):
            self.counters["refused: another terminal on the connection"] += 1
            return [self._reply(h, session, j.PLATFORM_RESPONSE, j.platform_response(h, j.FAILURE))]
        session.phone = h.phone
        try:
            if h.message_id == j.REGISTER:
                return [self._register(h, session)]
            if h.message_id == j.AUTHENTICATE:
                session.authenticated = hmac.compare_digest(j.auth_code(message), self.code(h.phone))
                self.counters["authenticated" if session.authenticated else "refused: authentication"] += 1
                result = j.OK if session.authenticated else j.FAILURE
            elif h.message_id in (j.LOCATION, j.BATCH_LOCATION):
                result = self._reports(message, session)
            elif h.message_id == j.TERMINAL_RESPONSE:
                return []
            elif h.message_id == j.DEREGISTER:
                session.authenticated, result = False, j.OK
            else:
                result = j.OK if h.message_id == j.HEARTBEAT else j.NOT_SUPPORTED
        except j.Jt808Error as exc:
            self.counters["refused: message error"] += 1
            log.info("jt808: terminal %s: message 0x%04X: %s", h.phone, h.message_id, exc)
            result = j.MESSAGE_ERROR
        return [self._reply(h, session, j.PLATFORM_RESPONSE, j.platform_response(h, result))]

    def _register(self, h: j.Header, session: Session) -> bytes:
        if self.vehicle(h.phone) is None:
            self.counters["refused: unknown terminal"] += 1
            log.warning("jt808: terminal %s asked to register and is not in this gateway's profile", h.phone)
            return self._reply(h, session, j.REGISTER_RESPONSE, j.register_response(h, j.NO_SUCH_TERMINAL))
        self.counters["registered"] += 1
        return self._reply(h, session, j.REGISTER_RESPONSE, j.register_response(h, j.REGISTERED, self.code(h.phone)))

    def _reports(self, message: j.Message, session: Session) -> int:
        h = message.header
        vehicle = self.vehicle(h.phone)
        if vehicle is None:
            self.counters["refused: unknown terminal"] += 1
            return j.FAILURE
        if self.cfg.require_authentication and not session.authenticated:
            self.counters["refused: not authenticated"] += 1
            return j.FAILURE
        backfill, reports = ((False, [j.location(message.body)]) if h.message_id == j.LOCATION
                             else j.batch_locations(message.body))
        for report in reports:
            self.counters["reports"] += 1
            if report.fixed:
                self.fix(vehicle, _fix(report), backfill)
            else:
                self.counters["reports without a fix"] += 1
        return j.OK

    @staticmethod
    def _reply(to: j.Header, session: Session, message_id: int, body: bytes) -> bytes:
        return j.frame(j.Header(message_id, to.phone, session.next_serial(), to.version), body)


def _fix(report: j.Location) -> Fix:
    sats = report.extras.get("satellites")
    return Fix(ts=report.ts, lat=report.lat, lon=report.lon, speed_kmh=report.speed_kmh,
               course_deg=float(report.course_deg), sats=int(sats) if isinstance(sats, int | float) else None,
               alt_m=float(report.altitude_m), alarms=report.alarms)
