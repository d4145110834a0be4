"""An LLRP reader on a TCP port that answers like a fixed reader (an Impinj Speedway R420 by default),
for tests, benchmarks and a stack without hardware.

It takes one client at a time (a second is refused with the connection event a reader sends), answers
every command with its LLRPStatus (a power level it does not have, an antenna it does not have, a ROSpec
it does not know: refused, as a reader refuses them), sends keepalives at the period the client set,
and reports the tags it is handed once a ROSpec runs. It can reboot mid-inventory (the connection drops
and every setting and ROSpec is forgotten) or hang after half a message (power lost: no more bytes, no
FIN), the two ways a client loses a reader.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Sequence

from device_drivers.rfid import llrp
from device_drivers.rfid.llrp import Capabilities, Message, MessageDecoder

PARAMETER_ERROR, FIELD_ERROR, UNSUPPORTED_MESSAGE = 100, 101, 109
IMPINJ, SPEEDWAY_R420 = 25882, 2001002
# Channels, kHz: the Chinese 920.5-924.5 MHz band as Impinj readers hop it, and ETSI's four in Europe
CHANNELS = {"PRC": tuple(920_625 + 250 * n for n in range(16)), "EU": (865_700, 866_300, 866_900, 867_500)}


def r420(region: str = "PRC", antennas: int = 4, hopping: bool = True) -> Capabilities:
    power = {n + 1: 10.0 + 0.25 * n for n in range(91)}  # 10.00 to 32.50 dBm
    channels = CHANNELS[region]
    return Capabilities(antennas, IMPINJ, SPEEDWAY_R420, "7.5.0.40", True, power, hopping,
                        {1: channels} if hopping else {}, () if hopping else channels)


class LlrpReader:
    def __init__(self, capabilities: Capabilities | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.capabilities = capabilities or r420()
        self._server = socket.create_server((host, port))
        self.port = self._server.getsockname()[1]
        self.address = f"{host}:{self.port}"
        self.started = threading.Event()  # a ROSpec runs: tags handed to `report` reach the client
        self.received: list[str] = []  # the client's commands by name, in order, over every connection
        self.connections = 0
        self.keepalive_acks = 0
        self._lock = threading.Lock()
        self._client: socket.socket | None = None
        self._hung: list[socket.socket] = []  # held open: closing them would send the FIN a dead reader cannot
        self._closed = False
        self._ids = iter(range(1, 1 << 32))
        self._forget()
        threading.Thread(target=self._accept, name="llrp-reader", daemon=True).start()

    def _forget(self) -> None:
        """Power-on state: no ROSpec, no settings."""
        self.keepalive_ms = 0
        self.power_index: dict[int, int] = {}
        self.rospecs: dict[int, dict[str, object]] = {}
        self.started.clear()

    # -- what a test does to the reader ---------------------------------------------------------------

    def report(self, tags: Sequence[tuple[str, int, int]], channel: int = 1) -> bool:
        """One RO_ACCESS_REPORT of (EPC hex, antenna, RSSI dBm) seen now; False when no ROSpec runs."""
        now_us = time.time_ns() // 1000
        data = [llrp.tag_report_data(epc, antenna, rssi, now_us, channel) for epc, antenna, rssi in tags]
        return self.started.is_set() and self.send(llrp.ro_access_report(next(self._ids), data))

    def send(self, data: bytes) -> bool:
        with self._lock:
            client = self._client
            if client is None:
                return False
            try:
                client.sendall(data)
            except OSError:
                return False
        return True

    def reboot(self) -> None:
        """The connection drops mid-inventory; the reader comes back with nothing configured."""
        with self._lock:
            client, self._client = self._client, None
            self._forget()
        if client is not None:
            client.close()

    def hang(self, partial: bytes = b"") -> None:
        """Send `partial` (half a message, say), then nothing more on this connection and no FIN, like a
        reader that lost power; it is back, unconfigured, for the next connection."""
        self.send(partial)
        with self._lock:
            if self._client is not None:
                self._hung.append(self._client)
            self._client = None
            self._forget()

    def close(self) -> None:
        self._closed = True
        self.reboot()
        for sock in self._hung:
            sock.close()
        self._server.close()

    # -- the reader's side -----------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                busy = self._client is not None
                if not busy:
                    self._client = sock
                    self.connections += 1
            if busy:
                sock.sendall(self._notification(llrp.connection_attempt_event(2)))
                sock.close()
                self.send(self._notification(llrp.connection_attempt_event(4)))
                continue
            self.send(self._notification(llrp.connection_attempt_event(0)))
            threading.Thread(target=self._serve, args=(sock,), name="llrp-reader-client", daemon=True).start()

    def _notification(self, *events: bytes) -> bytes:
        return llrp.notification(next(self._ids), time.time_ns() // 1000, *events)

    def _serve(self, sock: socket.socket) -> None:
        decoder = MessageDecoder()
        next_keepalive = time.monotonic()
        while self._client is sock:
            try:  # select, not a socket timeout: that would cut short a long `send` on the same socket
                ready = select.select([sock], [], [], 0.05)[0]
                data = sock.recv(65536) if ready else b""
            except (OSError, ValueError):  # ValueError: select on a socket closed by `reboot`
                break
            if ready and not data:
                break
            for msg in decoder.feed(data):
                if self._client is sock:
                    if msg.kind != llrp.KEEPALIVE_ACK:
                        self.received.append(msg.name)
                    self.send(self._answer(msg))
            if self.keepalive_ms and time.monotonic() >= next_keepalive and self._client is sock:
                self.send(llrp.message(llrp.KEEPALIVE, next(self._ids)))
                next_keepalive = time.monotonic() + self.keepalive_ms / 1000
        with self._lock:
            if self._client is sock:
                self._client = None
                self._forget()
        if sock not in self._hung:
            sock.close()

    def _answer(self, msg: Message) -> bytes:
        kind = llrp.RESPONSE.get(msg.kind)
        if msg.kind == llrp.KEEPALIVE_ACK:
            self.keepalive_acks += 1
            return b""
        if kind is None:
            return llrp.response(llrp.ERROR_MESSAGE, msg.id, UNSUPPORTED_MESSAGE, f"{msg.name} is not supported")
        try:
            more = self._apply(msg)
        except _Refusal as refusal:
            return llrp.response(kind, msg.id, refusal.code, str(refusal))
        reply = llrp.response(kind, msg.id, llrp.SUCCESS, "", more)
        if msg.kind == llrp.START_ROSPEC:
            reply += self._notification(llrp.rospec_event(llrp.ROSPEC_STARTED, llrp.spec_id(msg.body)))
        return reply

    def _apply(self, msg: Message) -> bytes:
        body = msg.body
        if msg.kind == llrp.GET_READER_CAPABILITIES:
            return llrp.capabilities_body(self.capabilities)
        if msg.kind == llrp.SET_READER_CONFIG:
            self._configure(body)
        elif msg.kind == llrp.ADD_ROSPEC:
            self._add(body)
        elif msg.kind in (llrp.ENABLE_ROSPEC, llrp.START_ROSPEC):
            spec = self.rospecs.get(llrp.spec_id(body))
            if spec is None or (msg.kind == llrp.START_ROSPEC and not spec["enabled"]):
                raise _Refusal(FIELD_ERROR, f"ROSpec {llrp.spec_id(body)} is not "
                                            f"{'known' if spec is None else 'enabled'}")
            spec["enabled"] = True
            if msg.kind == llrp.START_ROSPEC:
                self.started.set()
        elif msg.kind == llrp.DELETE_ROSPEC:
            spec_id = llrp.spec_id(body)
            self.rospecs = {} if spec_id == 0 else {k: v for k, v in self.rospecs.items() if k != spec_id}
            self.started.clear()
        return b""

    def _configure(self, body: bytes) -> None:
        if body[0] & 0x80:
            self._forget()
        for kind, start, end in llrp.params(body, 1):
            if kind == llrp.KEEPALIVE_SPEC:
                self.keepalive_ms = struct.unpack_from(">I", body, start + 1)[0]
            elif kind == llrp.ANTENNA_CONFIGURATION:
                antenna = struct.unpack_from(">H", body, start)[0]
                if not 1 <= antenna <= self.capabilities.antennas:
                    raise _Refusal(PARAMETER_ERROR, f"antenna {antenna} does not exist")
                transmitter = llrp.find(body, llrp.RF_TRANSMITTER, start + 2, end)
                if transmitter is not None:
                    hop_table, _, index = struct.unpack_from(">HHH", body, transmitter[0])
                    if index not in self.capabilities.power_dbm:
                        raise _Refusal(PARAMETER_ERROR, f"power level {index} is not in the power table")
                    if self.capabilities.hopping and hop_table not in self.capabilities.hop_tables:
                        raise _Refusal(PARAMETER_ERROR, f"hop table {hop_table} does not exist")
                    self.power_index[antenna] = index

    def _add(self, body: bytes) -> None:
        found = llrp.find(body, llrp.ROSPEC)
        if found is None:
            raise _Refusal(PARAMETER_ERROR, "ADD_ROSPEC without a ROSpec")
        start, end = found
        spec_id = struct.unpack_from(">I", body, start)[0]
        if spec_id in self.rospecs:
            raise _Refusal(FIELD_ERROR, f"ROSpec {spec_id} exists")
        ai = llrp.find(body, llrp.AISPEC, start + 6, end)
        report = llrp.find(body, llrp.RO_REPORT_SPEC, start + 6, end)
        if ai is None or report is None:
            raise _Refusal(PARAMETER_ERROR, "a ROSpec without an AISpec or an ROReportSpec")
        count = struct.unpack_from(">H", body, ai[0])[0]
        antennas = struct.unpack_from(f">{count}H", body, ai[0] + 2)
        if not all(1 <= a <= self.capabilities.antennas for a in antennas):
            raise _Refusal(PARAMETER_ERROR, f"antennas {list(antennas)}: the reader has {self.capabilities.antennas}")
        self.rospecs[spec_id] = {"antennas": antennas, "every": struct.unpack_from(">H", body, report[0] + 1)[0],
                                 "enabled": False}


class _Refusal(Exception):
    def __init__(self, code: int, text: str) -> None:
        self.code = code
        super().__init__(text)
