"""A client's conversation with an LLRP reader over one connection, without I/O: `feed` it what the
reader sent (tag reads come back), write what `outgoing` returns.

On every connection the client reads the reader's capabilities,
resets it to factory settings and deletes its specs (a reader may carry another client's), configures
keepalives, events, each antenna's power and the region's channels, then adds, enables and starts one
ROSpec; from then on it acknowledges keepalives and streams reads. A reader that refuses a step raises
`LlrpRefused`, one that stops talking `ReaderSilent` (a TimeoutError); the gateway then reconnects with
backoff and the conversation starts again, since a rebooted reader has forgotten its ROSpec.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import deque
from collections.abc import Callable

from device_drivers.rfid import llrp
from device_drivers.rfid.llrp import Capabilities, LlrpDecoder, Message
from device_drivers.rfid.protocol import CommandRefused, Inventory, ReaderProtocol
from device_drivers.types import TagRead

log = logging.getLogger(__name__)
ANSWER_TIMEOUT_S = 5.0
KEEPALIVES_MISSED = 3  # this many keepalive periods without a word from the reader: the connection is dead
ROSPEC_ID = 1


class LlrpRefused(CommandRefused):
    """The reader refused a step, or what the profile asks does not fit the reader."""


class ReaderSilent(TimeoutError):
    """The reader did not answer, or sent no keepalive, in time."""


class LlrpSession:
    def __init__(self, reader: str, inventory: Inventory, clock: Callable[[], float] = time.monotonic) -> None:
        self.reader, self.inventory, self._clock = reader, inventory, clock
        self.decoder = LlrpDecoder(reader)
        self.bad_frames = self.decoder.bad_frames
        self.running = False
        self.capabilities: Capabilities | None = None
        self._out = bytearray()
        self._ids = iter(range(1, 1 << 32))
        self._steps: deque[tuple[str, int, Callable[[int], bytes]]] = deque()
        self._waiting: tuple[str, int, int] | None = None  # (what, response type, message id)
        self._deadline, self._what = 0.0, ""  # set by _ask
        # Asked at once, not after the reader's connection event: nothing is lost by it (a reader busy
        # with another client sends its refusal anyway) and a late or lost event cannot stall the start.
        self._ask("its capabilities", llrp.GET_READER_CAPABILITIES, llrp.get_reader_capabilities)

    def feed(self, data: bytes) -> list[TagRead]:
        reads = self.decoder.feed(data)
        if self.decoder.bad_frames["garbage"]:
            raise ConnectionError(f"{self.reader}: the reader sent bytes that are not LLRP messages")
        while self.decoder.messages:
            msg = self.decoder.messages.popleft()
            try:
                self._take(msg)
            except (ValueError, IndexError, struct.error) as exc:  # LlrpError is a ValueError
                raise ConnectionError(f"{self.reader}: an undecodable {msg.name} from the reader ({exc})") from exc
        if self.running:
            self._deadline = self._clock() + KEEPALIVES_MISSED * self.inventory.keepalive_s
        return reads

    def outgoing(self) -> bytes:
        """What to write to the reader now; raises ReaderSilent when it has been silent too long."""
        if self._clock() > self._deadline:
            if self.running:
                raise ReaderSilent(f"{self.reader}: no keepalive from the reader for "
                                   f"{KEEPALIVES_MISSED * self.inventory.keepalive_s:.0f} s")
            raise ReaderSilent(f"{self.reader}: no answer to {self._what} within {ANSWER_TIMEOUT_S:.0f} s")
        out = bytes(self._out)
        self._out.clear()
        return out

    def _take(self, msg: Message) -> None:
        if msg.kind == llrp.KEEPALIVE:
            self._out += llrp.keepalive_ack(msg.id)
        elif msg.kind == llrp.READER_EVENT_NOTIFICATION:
            self._event(llrp.reader_event(msg.body))
        elif msg.kind == llrp.ERROR_MESSAGE:
            code, text = llrp.status(msg.body)
            raise LlrpRefused(msg.kind, code, f"{self.reader}: the reader could not take a message: {text} "
                                              f"(LLRP status {code})")
        elif self._waiting is not None and (msg.kind, msg.id) == self._waiting[1:]:
            self._answered(self._waiting[0], msg)

    def _event(self, event: llrp.ReaderEvent) -> None:
        if event.connection_attempt is not None:
            outcome = llrp.CONNECTION_ATTEMPT.get(event.connection_attempt, "refused")
            if event.connection_attempt == 4:
                log.warning("%s: another LLRP client tried to connect to the reader", self.reader)
            elif event.connection_attempt != 0:
                raise LlrpRefused(llrp.READER_EVENT_NOTIFICATION, event.connection_attempt,
                                  f"{self.reader}: the reader {outcome}: a reader takes one LLRP client at a time, "
                                  f"stop the other one")
        if event.antenna is not None:
            connected, antenna = event.antenna
            if connected:
                log.info("%s: antenna %d connected", self.reader, antenna)
            else:
                log.warning("%s: antenna %d disconnected: check its cable", self.reader, antenna)
        if event.exception:
            log.warning("%s: the reader reports: %s", self.reader, event.exception)
        if self.running and event.rospec is not None and event.rospec[0] != llrp.ROSPEC_STARTED:
            raise ConnectionError(f"{self.reader}: the reader stopped the inventory (ROSpec event "
                                  f"{event.rospec[0]}): configuring it again")
        if event.connection_closed:
            log.info("%s: the reader is closing the connection", self.reader)

    def _ask(self, what: str, kind: int, encode: Callable[[int], bytes]) -> None:
        msg_id = next(self._ids)
        self._out += encode(msg_id)
        self._waiting, self._what = (what, llrp.RESPONSE[kind], msg_id), what
        self._deadline = self._clock() + ANSWER_TIMEOUT_S

    def _answered(self, what: str, msg: Message) -> None:
        code, text = llrp.status(msg.body)
        if code != llrp.SUCCESS:
            raise LlrpRefused(msg.kind, code, f"{self.reader}: the reader refused {what}: {text or 'no reason given'} "
                                              f"(LLRP status {code})")
        if msg.kind == llrp.GET_READER_CAPABILITIES_RESPONSE:
            self.capabilities = llrp.capabilities(msg.body)
            self._steps.extend(self._configuration(self.capabilities))
        if self._steps:
            self._ask(*self._steps.popleft())
            return
        self._waiting, self.running = None, True
        log.info("%s: inventory running on antennas %s", self.reader,
                 ", ".join(str(a) for a in self.inventory.power_dbm))

    def _configuration(self, caps: Capabilities) -> list[tuple[str, int, Callable[[int], bytes]]]:
        inv = self.inventory
        beyond = [a for a in inv.power_dbm if a > caps.antennas]
        if beyond:
            raise LlrpRefused(0, 0, f"{self.reader}: the profile uses antenna {beyond[0]} but the reader has "
                                    f"{caps.antennas}: fix the profile's antennas")
        hop_table, channel, channels = self._channels(caps)
        self.decoder.channels_khz = channels
        powers = {a: _power_index(caps.power_dbm, dbm) for a, dbm in inv.power_dbm.items()}
        single = inv.search_mode == "single_target"
        command = llrp.inventory_command(inv.session, inv.tag_population, single)
        transmitters = [llrp.antenna_configuration(a, power_index=i, hop_table=hop_table, channel=channel)
                        for a, i in powers.items()]
        inventories = [llrp.antenna_configuration(a, inventory=command) for a in powers]
        config = (llrp.events_spec((llrp.EVENT_ROSPEC, llrp.EVENT_READER_EXCEPTION, llrp.EVENT_ANTENNA)),
                  llrp.keepalive_spec(round(inv.keepalive_s * 1000)), *transmitters)
        antennas = list(powers)
        return [
            ("the reset to factory settings", llrp.SET_READER_CONFIG, lambda i: llrp.set_reader_config(i, reset=True)),
            ("deleting its access specs", llrp.DELETE_ACCESSSPEC,
             lambda i: llrp.spec_command(llrp.DELETE_ACCESSSPEC, i)),
            ("deleting its ROSpecs", llrp.DELETE_ROSPEC, lambda i: llrp.spec_command(llrp.DELETE_ROSPEC, i)),
            ("the configuration of keepalives, events, power and channels", llrp.SET_READER_CONFIG,
             lambda i: llrp.set_reader_config(i, *config)),
            ("the ROSpec", llrp.ADD_ROSPEC,
             lambda i: llrp.add_rospec(i, ROSPEC_ID, antennas, inventories, inv.report_every_tags)),
            ("enabling the ROSpec", llrp.ENABLE_ROSPEC, lambda i: llrp.spec_command(llrp.ENABLE_ROSPEC, i, ROSPEC_ID)),
            ("starting the ROSpec", llrp.START_ROSPEC, lambda i: llrp.spec_command(llrp.START_ROSPEC, i, ROSPEC_ID)),
        ]

    def _channels(self, caps: Capabilities) -> tuple[int, int, tuple[int, ...]]:
        """(hop table id, channel index, the channels' kHz) in the profile region's band: a hopping
        reader's hop table inside the band, or a fixed-frequency reader's first channel inside it."""
        low, high = (round(mhz * 1000) for mhz in self.inventory.band_mhz)
        if caps.hopping:
            for table, khz in sorted(caps.hop_tables.items()):
                if khz and low <= min(khz) and max(khz) <= high:
                    return table, 0, khz
            offered = [f for khz in caps.hop_tables.values() for f in khz]
        else:
            inside = [n for n, f in enumerate(caps.fixed_khz, 1) if low <= f <= high]
            if inside:
                return 0, inside[0], caps.fixed_khz
            offered = list(caps.fixed_khz)
        span = f"{min(offered) / 1000:.3f}-{max(offered) / 1000:.3f} MHz" if offered else "none"
        raise LlrpRefused(0, 0, f"{self.reader}: the reader's channels ({span}) are outside region "
                                f"{self.inventory.region} ({self.inventory.band_mhz[0]}-{self.inventory.band_mhz[1]} "
                                f"MHz): set the reader's region on its web page, or the profile's to the reader's")


def _power_index(table: dict[int, float], dbm: float) -> int:
    """The strongest level of the reader's table that does not exceed what is asked (else its weakest)."""
    if not table:
        raise LlrpRefused(0, 0, "the reader lists no transmit power levels")
    fitting = [(level, index) for index, level in table.items() if level <= dbm + 1e-6]
    return max(fitting)[1] if fitting else min((level, index) for index, level in table.items())[1]


PROTOCOL = ReaderProtocol("llrp", LlrpDecoder, converse=LlrpSession)
