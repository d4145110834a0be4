"""A TCP endpoint inside the gateway for devices that connect to it (a fleet's telematics terminals):
one asyncio loop in its own thread serves every connection, and the device's fixes go on the gateway's
queue as `VehicleFix`es, the way a serial GPS's do.

Unlike a serial GPS, such a device keeps what the server has not acknowledged and sends it again, so
the endpoint acknowledges only what the outbox has stored: after a device's fixes it puts a `Receipt`
on the queue, which the gateway's loop settles once everything before it is stored, and only then
answers. If the outbox does not store them within `STORE_WAIT_S` (its disk refuses writes), the connection is
closed unanswered and the device keeps its data."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import Counter
from typing import Any

from device_drivers.types import Fix, VehicleFix

log = logging.getLogger(__name__)
READ_BYTES = 4096
STORE_WAIT_S = 10.0


class Receipt:
    """Settled by the gateway's loop (another thread) once the fixes queued before it are stored."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.future = loop, loop.create_future()

    def settle(self) -> None:
        with contextlib.suppress(RuntimeError):  # the endpoint's loop has ended: nobody waits any more
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if not self.future.done():  # not given up on (timed out)
            self.future.set_result(None)


class TcpEndpoint(threading.Thread):
    """Subclasses answer one connection in `converse`."""

    def __init__(self, name: str, listen: str, out: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.listen, self.out, self.stop_event = listen, out, stop
        self.counters: Counter[str] = Counter()
        self.connections = 0
        self.listening = threading.Event()
        self.port = 0  # the port it listens on, once listening (0 in the profile: any free one)
        self._pending: list[VehicleFix] = []  # fixes taken since the last receipt, queued with it
        self.store_wait_s = STORE_WAIT_S

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        host, port = self.listen.rsplit(":", 1)
        server = await asyncio.start_server(self._connection, host, int(port))
        self.port = server.sockets[0].getsockname()[1]
        log.info("%s: listening on %s:%d", self.name, host, self.port)
        self.listening.set()
        async with server:
            await asyncio.to_thread(self.stop_event.wait)
        self.listening.clear()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.converse(reader, writer)
        except (ConnectionError, TimeoutError) as exc:
            log.info("%s: a device left: %s", self.name, exc)
        finally:
            self.connections -= 1
            writer.close()

    async def converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def fix(self, vehicle: str, fix: Fix, backfill: bool = False) -> None:
        self._pending.append(VehicleFix(vehicle, fix, backfill))

    async def answer_when_stored(self, writer: asyncio.StreamWriter, replies: list[bytes]) -> bool:
        """Writes the replies once the fixes queued for them are in the outbox. False, nothing written,
        when the outbox did not store them in time: the caller closes the connection."""
        if self._pending:  # no await since they were taken: they are this connection's
            receipt = Receipt(asyncio.get_running_loop())
            self.out.put((self.name, self._pending))  # one queue item for a read's fixes, not one each
            self.out.put((self.name, receipt))
            self._pending = []
            try:
                await asyncio.wait_for(receipt.future, self.store_wait_s)
            except TimeoutError:
                self.counters["unanswered: outbox not storing"] += 1
                log.warning("%s: the outbox did not store a device's fixes within %.0f s: closing its connection "
                            "unanswered, the device keeps them", self.name, self.store_wait_s)
                return False
        writer.writelines(replies)
        await writer.drain()
        return True
