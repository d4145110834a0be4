"""LLRP 1.0.1 (EPCglobal Low Level Reader Protocol) on TCP 5084: the fixed readers of dock-door portals
(Impinj Speedway and R700, Zebra FX7500 and FX9600). This module is the codec; `llrp_session` holds the
conversation a client has with a reader.

A message is a 10-byte header (3 reserved bits, a 3-bit version, a 10-bit type; the 32-bit length of
the whole message; a 32-bit id that a response repeats) and parameters. A parameter is TLV (6 reserved
bits, a 10-bit type, a 16-bit length counting its 4-byte header, its fields, then its own parameters)
or, for the small fixed ones, TV (the high bit set, a 7-bit type, a value of a size the type fixes).
Nothing marks where a message starts: a stream is cut by the lengths, and bytes that do not make a
plausible header mean the stream is lost (the client reconnects).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from device_drivers.framing import StreamDecoder
from device_drivers.types import TagRead

VERSION = 1  # LLRP 1.0.1, which every reader of the family speaks
PORT = 5084
HEADER = struct.Struct(">HII")
HEADER_SIZE = HEADER.size
MAX_MESSAGE = 1 << 20  # a report of thousands of tags fits; a larger length is a broken stream

# Message types
GET_READER_CAPABILITIES, SET_READER_CONFIG, CLOSE_CONNECTION_RESPONSE = 1, 3, 4
GET_READER_CAPABILITIES_RESPONSE, SET_READER_CONFIG_RESPONSE, CLOSE_CONNECTION = 11, 13, 14
ADD_ROSPEC, DELETE_ROSPEC, START_ROSPEC, STOP_ROSPEC, ENABLE_ROSPEC, DISABLE_ROSPEC = 20, 21, 22, 23, 24, 25
ADD_ROSPEC_RESPONSE, DELETE_ROSPEC_RESPONSE, START_ROSPEC_RESPONSE = 30, 31, 32
STOP_ROSPEC_RESPONSE, ENABLE_ROSPEC_RESPONSE, DISABLE_ROSPEC_RESPONSE = 33, 34, 35
DELETE_ACCESSSPEC, DELETE_ACCESSSPEC_RESPONSE = 41, 51
RO_ACCESS_REPORT, KEEPALIVE, READER_EVENT_NOTIFICATION, KEEPALIVE_ACK = 61, 62, 63, 72
ERROR_MESSAGE, CUSTOM_MESSAGE = 100, 1023
MESSAGES = {
    GET_READER_CAPABILITIES: "GET_READER_CAPABILITIES", SET_READER_CONFIG: "SET_READER_CONFIG",
    CLOSE_CONNECTION_RESPONSE: "CLOSE_CONNECTION_RESPONSE", CLOSE_CONNECTION: "CLOSE_CONNECTION",
    GET_READER_CAPABILITIES_RESPONSE: "GET_READER_CAPABILITIES_RESPONSE",
    SET_READER_CONFIG_RESPONSE: "SET_READER_CONFIG_RESPONSE", ADD_ROSPEC: "ADD_ROSPEC",
    DELETE_ROSPEC: "DELETE_ROSPEC", START_ROSPEC: "START_ROSPEC", STOP_ROSPEC: "STOP_ROSPEC",
    ENABLE_ROSPEC: "ENABLE_ROSPEC", DISABLE_ROSPEC: "DISABLE_ROSPEC", ADD_ROSPEC_RESPONSE: "ADD_ROSPEC_RESPONSE",
    DELETE_ROSPEC_RESPONSE: "DELETE_ROSPEC_RESPONSE", START_ROSPEC_RESPONSE: "START_ROSPEC_RESPONSE",
    STOP_ROSPEC_RESPONSE: "STOP_ROSPEC_RESPONSE", ENABLE_ROSPEC_RESPONSE: "ENABLE_ROSPEC_RESPONSE",
    DISABLE_ROSPEC_RESPONSE: "DISABLE_ROSPEC_RESPONSE", DELETE_ACCESSSPEC: "DELETE_ACCESSSPEC",
    DELETE_ACCESSSPEC_RESPONSE: "DELETE_ACCESSSPEC_RESPONSE", RO_ACCESS_REPORT: "RO_ACCESS_REPORT",
    KEEPALIVE: "KEEPALIVE", READER_EVENT_NOTIFICATION: "READER_EVENT_NOTIFICATION", KEEPALIVE_ACK: "KEEPALIVE_ACK",
    ERROR_MESSAGE: "ERROR_MESSAGE", CUSTOM_MESSAGE: "CUSTOM_MESSAGE",
}
RESPONSE = {GET_READER_CAPABILITIES: GET_READER_CAPABILITIES_RESPONSE, SET_READER_CONFIG: SET_READER_CONFIG_RESPONSE,
            CLOSE_CONNECTION: CLOSE_CONNECTION_RESPONSE, ADD_ROSPEC: ADD_ROSPEC_RESPONSE,
            DELETE_ROSPEC: DELETE_ROSPEC_RESPONSE, START_ROSPEC: START_ROSPEC_RESPONSE,
            STOP_ROSPEC: STOP_ROSPEC_RESPONSE, ENABLE_ROSPEC: ENABLE_ROSPEC_RESPONSE,
            DISABLE_ROSPEC: DISABLE_ROSPEC_RESPONSE, DELETE_ACCESSSPEC: DELETE_ACCESSSPEC_RESPONSE}

# TLV parameter types
UTC_TIMESTAMP, UPTIME = 128, 129
GENERAL_DEVICE_CAPABILITIES, REGULATORY_CAPABILITIES, UHF_BAND_CAPABILITIES = 137, 143, 144
TRANSMIT_POWER_LEVEL, FREQUENCY_INFORMATION, FREQUENCY_HOP_TABLE, FIXED_FREQUENCY_TABLE = 145, 146, 147, 148
ROSPEC, RO_BOUNDARY_SPEC, ROSPEC_START_TRIGGER, ROSPEC_STOP_TRIGGER = 177, 178, 179, 182
AISPEC, AISPEC_STOP_TRIGGER, INVENTORY_PARAMETER_SPEC = 183, 184, 186
KEEPALIVE_SPEC, ANTENNA_CONFIGURATION, RF_TRANSMITTER, EVENTS_AND_REPORTS = 220, 222, 224, 226
RO_REPORT_SPEC, TAG_REPORT_CONTENT_SELECTOR, TAG_REPORT_DATA, EPC_DATA = 237, 238, 240, 241
READER_EVENT_NOTIFICATION_SPEC, EVENT_NOTIFICATION_STATE, READER_EVENT_NOTIFICATION_DATA = 244, 245, 246
ROSPEC_EVENT, READER_EXCEPTION_EVENT, ANTENNA_EVENT = 249, 252, 255
CONNECTION_ATTEMPT_EVENT, CONNECTION_CLOSE_EVENT = 256, 257
LLRP_STATUS = 287
C1G2_INVENTORY_COMMAND, C1G2_SINGULATION_CONTROL, C1G2_STATE_AWARE_ACTION = 330, 336, 337

# TV parameter types and their value sizes
TV_ANTENNA_ID, TV_FIRST_SEEN_UTC, TV_FIRST_SEEN_UPTIME, TV_PEAK_RSSI, TV_CHANNEL_INDEX = 1, 2, 3, 6, 7
TV_TAG_SEEN_COUNT, TV_EPC_96 = 8, 13
TV_SIZES = {1: 2, 2: 8, 3: 8, 4: 8, 5: 8, 6: 1, 7: 2, 8: 2, 9: 4, 10: 2, 11: 2, 12: 2, 13: 12, 14: 2, 15: 2, 16: 4,
            17: 2, 18: 4}

# Field values
SUCCESS = 0
PROTOCOL_EPC_C1G2 = 1
REPORT_UPON_N_TAGS_OR_END_OF_ROSPEC = 2
KEEPALIVE_PERIODIC = 1
# What a report carries of each tag: antenna, channel, peak RSSI, first-seen time, seen count
CONTENT_SELECTOR = 0x1000 | 0x0800 | 0x0400 | 0x0200 | 0x0080
EVENT_ROSPEC, EVENT_READER_EXCEPTION, EVENT_ANTENNA = 2, 4, 8
ROSPEC_STARTED, ROSPEC_ENDED, ROSPEC_PREEMPTED = 0, 1, 2
CONNECTION_ATTEMPT = {0: "accepted", 1: "refused: the reader has its own connection to a client",
                      2: "refused: another client is connected", 3: "refused", 4: "another client tried to connect"}
CLOCK_TOLERANCE_S = 5.0  # a reader clock this far off the gateway's is not trusted: the read is stamped on arrival


class LlrpError(ValueError):
    """Bytes that do not make the LLRP message or parameter they should."""


@dataclass(frozen=True, slots=True)
class Message:
    kind: int
    id: int
    body: bytes

    @property
    def name(self) -> str:
        return MESSAGES.get(self.kind, f"message type {self.kind}")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a reader says of itself (GET_READER_CAPABILITIES_RESPONSE) that a client configures by."""

    antennas: int
    manufacturer: int  # IANA enterprise number: 25882 Impinj, 10642 Zebra
    model: int
    firmware: str
    utc_clock: bool
    power_dbm: dict[int, float]  # transmit power table: index → dBm
    hopping: bool
    hop_tables: dict[int, tuple[int, ...]]  # hop table id → its channels' frequencies, kHz
    fixed_khz: tuple[int, ...]  # a fixed-frequency reader's channels (1-based channel indexes), kHz


# -- framing and parameters -------------------------------------------------------------------------

def header_of(buf: bytes | bytearray, pos: int = 0) -> tuple[int, int, int] | None:
    """(type, length, id) of a plausible message header at pos, None when it cannot be one."""
    word, length, msg_id = HEADER.unpack_from(buf, pos)
    if word >> 13 or (word >> 10) & 7 not in (1, 2) or not HEADER_SIZE <= length <= MAX_MESSAGE:
        return None
    return word & 0x3FF, length, msg_id


def message(kind: int, msg_id: int, body: bytes = b"") -> bytes:
    return HEADER.pack((VERSION << 10) | kind, HEADER_SIZE + len(body), msg_id) + body


def tlv(kind: int, fields: bytes = b"", *params: bytes) -> bytes:
    body = fields + b"".join(params)
    return struct.pack(">HH", kind, 4 + len(body)) + body


def tv(kind: int, value: bytes) -> bytes:
    return bytes([0x80 | kind]) + value


def params(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int]]:
    """The parameters in data[start:end] as (type, start of value, end of value); TV types < 128."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        first = data[pos]
        if first & 0x80:
            kind = first & 0x7F
            size = TV_SIZES.get(kind)
            if size is None:
                raise LlrpError(f"unknown TV parameter {kind}")
            value, pos = pos + 1, pos + 1 + size
        else:
            if pos + 4 > end:
                raise LlrpError("a parameter header cut short")
            kind, length = ((first & 0x03) << 8) | data[pos + 1], (data[pos + 2] << 8) | data[pos + 3]
            if length < 4:
                raise LlrpError(f"parameter {kind} with length {length}")
            value, pos = pos + 4, pos + length
        if pos > end:
            raise LlrpError(f"parameter {kind} runs past its container")
        yield kind, value, pos


def find(data: bytes, kind: int, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """(start, end) of the value of the first parameter of this type in data[start:end]."""
    return next(((s, e) for k, s, e in params(data, start, end) if k == kind), None)


def _u16(data: bytes, pos: int) -> int:
    return (data[pos] << 8) | data[pos + 1]


def _utf8v(data: bytes, pos: int) -> tuple[str, int]:
    """A UTF-8 field (16-bit length, then the bytes) and where the next field starts."""
    size = _u16(data, pos)
    return data[pos + 2:pos + 2 + size].decode("utf-8", "replace"), pos + 2 + size


def _cut_message(self: StreamDecoder[object], buf: bytearray) -> tuple[int, bytes | None, str | None] | None:
    """The next message at the start of buf, by its length (see `StreamDecoder._cut`)."""
    if len(buf) < HEADER_SIZE:
        return None
    header = header_of(buf)
    if header is None:
        return 1, None, "garbage"
    length = header[1]
    return (length, bytes(buf[:length]), None) if len(buf) >= length else None


class MessageDecoder(StreamDecoder[Message]):
    """Cuts a byte stream into messages; `feed(bytes) -> list[Message]`."""

    def __init__(self) -> None:
        super().__init__(max_buffer=2 * MAX_MESSAGE)

    _cut = _cut_message

    def _decode(self, frame: bytes) -> list[Message]:
        kind, _, msg_id = header_of(frame) or (0, 0, 0)
        return [Message(kind, msg_id, frame[HEADER_SIZE:])]


# -- the reader's messages, read by the client ------------------------------------------------------

class LlrpDecoder(StreamDecoder[TagRead]):
    """A reader's stream: RO_ACCESS_REPORTs become `TagRead`s; every other message waits in `messages`
    for the conversation. `channels_khz` (1-based channel index → frequency) fills `frequency_khz`."""

    def __init__(self, reader: str = "") -> None:
        super().__init__(max_buffer=2 * MAX_MESSAGE)
        self.reader = reader
        self.messages: deque[Message] = deque()
        self.channels_khz: Sequence[int] = ()
        self.clock_off = 0  # reads whose reader time was off the gateway's clock

    _cut = _cut_message

    def _decode(self, frame: bytes) -> list[TagRead]:
        kind, _, msg_id = header_of(frame) or (0, 0, 0)
        if kind == RO_ACCESS_REPORT:
            return self.tag_reads(frame, HEADER_SIZE)
        self.messages.append(Message(kind, msg_id, frame[HEADER_SIZE:]))
        return []

    def tag_reads(self, data: bytes, start: int = 0) -> list[TagRead]:
        """The TagReportData parameters of a report body; other parameters (survey data, custom) are skipped."""
        now = datetime.now(UTC)
        now_s = now.timestamp()  # once a report: the hot loop below runs once a tag
        return [self._tag(data, value, end, now, now_s) for kind, value, end in params(data, start)
                if kind == TAG_REPORT_DATA]

    def _tag(self, data: bytes, pos: int, end: int, now: datetime, now_s: float) -> TagRead:
        epc = ""
        antenna = channel = 0
        rssi: float | None = None
        seen_us: int | None = None
        while pos < end:  # the hot path: TV parameters read inline rather than through `params`
            first = data[pos]
            if first & 0x80:
                kind = first & 0x7F
                if kind == TV_EPC_96:
                    epc = data[pos + 1:pos + 13].hex().upper()
                elif kind == TV_ANTENNA_ID:
                    antenna = (data[pos + 1] << 8) | data[pos + 2]
                elif kind == TV_PEAK_RSSI:
                    rssi = float(data[pos + 1] - 256 if data[pos + 1] > 127 else data[pos + 1])
                elif kind == TV_FIRST_SEEN_UTC:
                    seen_us = int.from_bytes(data[pos + 1:pos + 9], "big")
                elif kind == TV_CHANNEL_INDEX:
                    channel = (data[pos + 1] << 8) | data[pos + 2]
                size = TV_SIZES.get(kind)
                if size is None:
                    raise LlrpError(f"unknown TV parameter {kind}")
                pos += 1 + size
            else:
                kind, length = ((first & 0x03) << 8) | data[pos + 1], (data[pos + 2] << 8) | data[pos + 3]
                if length < 4:
                    raise LlrpError(f"parameter {kind} with length {length}")
                if kind == EPC_DATA:
                    bits = _u16(data, pos + 4)
                    epc = data[pos + 6:pos + 6 + (bits + 7) // 8].hex().upper()
                pos += length
        if pos != end or not epc:
            raise LlrpError("a TagReportData without an EPC, or running past its length")
        read_at = now
        if seen_us is not None:
            if abs(seen_us / 1e6 - now_s) <= CLOCK_TOLERANCE_S:
                read_at = datetime.fromtimestamp(seen_us / 1e6, UTC)
            else:
                self.clock_off += 1
        frequency = self.channels_khz[channel - 1] if 0 < channel <= len(self.channels_khz) else None
        return TagRead(epc=epc, antenna=antenna, rssi_dbm=rssi, read_at=read_at, reader=self.reader,
                       frequency_khz=frequency)


def status(body: bytes) -> tuple[int, str]:
    """(status code, error description) of a response's LLRPStatus."""
    found = find(body, LLRP_STATUS)
    if found is None:
        raise LlrpError("a response without LLRPStatus")
    start, _ = found
    return _u16(body, start), _utf8v(body, start + 2)[0]


def capabilities(body: bytes) -> Capabilities:
    general = find(body, GENERAL_DEVICE_CAPABILITIES)
    regulatory = find(body, REGULATORY_CAPABILITIES)
    if general is None or regulatory is None:
        raise LlrpError("capabilities without the general device or regulatory capabilities")
    g = general[0]
    antennas, flags, manufacturer, model = struct.unpack_from(">HHII", body, g)
    firmware, _ = _utf8v(body, g + 12)
    band = find(body, UHF_BAND_CAPABILITIES, regulatory[0] + 4, regulatory[1])
    if band is None:
        raise LlrpError("regulatory capabilities without UHF band capabilities")
    power, hop_tables, fixed, hopping = {}, {}, (), False
    for kind, start, end in params(body, *band):
        if kind == TRANSMIT_POWER_LEVEL:
            index, centi_dbm = struct.unpack_from(">Hh", body, start)
            power[index] = centi_dbm / 100
        elif kind == FREQUENCY_INFORMATION:
            hopping = bool(body[start] & 0x80)
            for table, s, _ in params(body, start + 1, end):
                if table == FREQUENCY_HOP_TABLE:
                    count = _u16(body, s + 2)
                    hop_tables[body[s]] = struct.unpack_from(f">{count}I", body, s + 4)
                elif table == FIXED_FREQUENCY_TABLE:
                    fixed = struct.unpack_from(f">{_u16(body, s)}I", body, s + 2)
    return Capabilities(antennas, manufacturer, model, firmware, bool(flags & 0x4000), power, hopping, hop_tables,
                        fixed)


@dataclass(frozen=True, slots=True)
class ReaderEvent:
    """What a READER_EVENT_NOTIFICATION tells: the events the client acts on or logs."""

    connection_attempt: int | None = None  # status
    connection_closed: bool = False
    rospec: tuple[int, int] | None = None  # (event type, ROSpec id)
    antenna: tuple[bool, int] | None = None  # (connected, antenna id)
    exception: str | None = None


def reader_event(body: bytes) -> ReaderEvent:
    data = find(body, READER_EVENT_NOTIFICATION_DATA)
    if data is None:
        raise LlrpError("a notification without ReaderEventNotificationData")
    found: dict[str, object] = {}
    for kind, start, _ in params(body, *data):
        if kind == CONNECTION_ATTEMPT_EVENT:
            found["connection_attempt"] = _u16(body, start)
        elif kind == CONNECTION_CLOSE_EVENT:
            found["connection_closed"] = True
        elif kind == ROSPEC_EVENT:
            found["rospec"] = (body[start], struct.unpack_from(">I", body, start + 1)[0])
        elif kind == ANTENNA_EVENT:
            found["antenna"] = (bool(body[start]), _u16(body, start + 1))
        elif kind == READER_EXCEPTION_EVENT:
            found["exception"] = _utf8v(body, start)[0]
    return ReaderEvent(**found)  # type: ignore[arg-type]


# -- the client's messages ----------------------------------------------------------------------------

def get_reader_capabilities(msg_id: int) -> bytes:
    return message(GET_READER_CAPABILITIES, msg_id, b"\x00")  # all capabilities


def set_reader_config(msg_id: int, *config: bytes, reset: bool = False) -> bytes:
    return message(SET_READER_CONFIG, msg_id, bytes([0x80 if reset else 0]) + b"".join(config))


def spec_command(kind: int, msg_id: int, spec_id: int = 0) -> bytes:
    """DELETE_ROSPEC, ENABLE_ROSPEC, START_ROSPEC, DELETE_ACCESSSPEC...: 0 means every spec."""
    return message(kind, msg_id, struct.pack(">I", spec_id))


def spec_id(body: bytes) -> int:
    """The ROSpec or AccessSpec id a spec command names."""
    return int(struct.unpack_from(">I", body)[0])


def keepalive_spec(period_ms: int) -> bytes:
    return tlv(KEEPALIVE_SPEC, struct.pack(">BI", KEEPALIVE_PERIODIC, period_ms))


def events_spec(events: Iterable[int]) -> bytes:
    """ReaderEventNotificationSpec turning these events on, and reports sent at once after a reconnect."""
    states = [tlv(EVENT_NOTIFICATION_STATE, struct.pack(">HB", event, 0x80)) for event in events]
    return tlv(READER_EVENT_NOTIFICATION_SPEC, b"", *states) + tlv(EVENTS_AND_REPORTS, b"\x00")


def antenna_configuration(antenna: int, *, power_index: int = 0, hop_table: int = 0, channel: int = 0,
                          inventory: bytes = b"") -> bytes:
    """Power and channels (RFTransmitter) when power_index is given, and an inventory command."""
    transmitter = tlv(RF_TRANSMITTER, struct.pack(">HHH", hop_table, channel, power_index)) if power_index else b""
    return tlv(ANTENNA_CONFIGURATION, struct.pack(">H", antenna), transmitter, inventory)


def inventory_command(session: int, tag_population: int, single_target: bool) -> bytes:
    """C1G2InventoryCommand: dual target (state unaware) or single target (state A tags only, then B)."""
    action = tlv(C1G2_STATE_AWARE_ACTION, b"\x00") if single_target else b""
    singulation = tlv(C1G2_SINGULATION_CONTROL, struct.pack(">BHI", session << 6, tag_population, 0), action)
    return tlv(C1G2_INVENTORY_COMMAND, bytes([0x80 if single_target else 0]), singulation)


def add_rospec(msg_id: int, rospec_id: int, antennas: Sequence[int], antenna_configs: Sequence[bytes],
               report_every_tags: int) -> bytes:
    """One ROSpec, disabled, started and stopped by command only, inventorying on the antennas with one
    report every N tags."""
    boundary = tlv(RO_BOUNDARY_SPEC, b"", tlv(ROSPEC_START_TRIGGER, b"\x00"),
                   tlv(ROSPEC_STOP_TRIGGER, struct.pack(">BI", 0, 0)))
    inventory = tlv(INVENTORY_PARAMETER_SPEC, struct.pack(">HB", 1, PROTOCOL_EPC_C1G2), *antenna_configs)
    ai = tlv(AISPEC, struct.pack(f">H{len(antennas)}H", len(antennas), *antennas),
             tlv(AISPEC_STOP_TRIGGER, struct.pack(">BI", 0, 0)), inventory)
    report = tlv(RO_REPORT_SPEC, struct.pack(">BH", REPORT_UPON_N_TAGS_OR_END_OF_ROSPEC, report_every_tags),
                 tlv(TAG_REPORT_CONTENT_SELECTOR, struct.pack(">H", CONTENT_SELECTOR)))
    return message(ADD_ROSPEC, msg_id, tlv(ROSPEC, struct.pack(">IBB", rospec_id, 0, 0), boundary, ai, report))


def keepalive_ack(msg_id: int) -> bytes:
    return message(KEEPALIVE_ACK, msg_id)


# -- the reader's messages, written by the simulator --------------------------------------------------

def llrp_status(code: int = SUCCESS, text: str = "") -> bytes:
    encoded = text.encode()
    return tlv(LLRP_STATUS, struct.pack(">HH", code, len(encoded)) + encoded)


def response(kind: int, msg_id: int, code: int = SUCCESS, text: str = "", *more: bytes) -> bytes:
    return message(kind, msg_id, llrp_status(code, text) + b"".join(more))


def notification(msg_id: int, at_us: int, *events: bytes) -> bytes:
    data = tlv(READER_EVENT_NOTIFICATION_DATA, b"", tlv(UTC_TIMESTAMP, struct.pack(">Q", at_us)), *events)
    return message(READER_EVENT_NOTIFICATION, msg_id, data)


def connection_attempt_event(status_code: int) -> bytes:
    return tlv(CONNECTION_ATTEMPT_EVENT, struct.pack(">H", status_code))


def rospec_event(event: int, rospec_id: int) -> bytes:
    return tlv(ROSPEC_EVENT, struct.pack(">BII", event, rospec_id, 0))


def antenna_event(connected: bool, antenna: int) -> bytes:
    return tlv(ANTENNA_EVENT, struct.pack(">BH", connected, antenna))


def capabilities_body(c: Capabilities) -> bytes:
    firmware = c.firmware.encode()
    general = tlv(GENERAL_DEVICE_CAPABILITIES, struct.pack(">HHIIH", c.antennas, 0x4000 if c.utc_clock else 0,
                                                           c.manufacturer, c.model, len(firmware)) + firmware)
    powers = [tlv(TRANSMIT_POWER_LEVEL, struct.pack(">Hh", i, round(dbm * 100))) for i, dbm in c.power_dbm.items()]
    tables = [tlv(FREQUENCY_HOP_TABLE, struct.pack(f">BBH{len(khz)}I", i, 0, len(khz), *khz))
              for i, khz in c.hop_tables.items()]
    if c.fixed_khz:
        fixed = c.fixed_khz
        tables.append(tlv(FIXED_FREQUENCY_TABLE, struct.pack(f">H{len(fixed)}I", len(fixed), *fixed)))
    frequencies = tlv(FREQUENCY_INFORMATION, bytes([0x80 if c.hopping else 0]), *tables)
    regulatory = tlv(REGULATORY_CAPABILITIES, struct.pack(">HH", 0, 0),
                     tlv(UHF_BAND_CAPABILITIES, b"", *powers, frequencies))
    return general + regulatory


def tag_report_data(epc_hex: str, antenna: int, rssi_dbm: int, first_seen_us: int, channel: int = 1,
                    seen_count: int = 1) -> bytes:
    """One tag as a report carries it with the client's content selector (EPCData for EPCs not of 96 bits)."""
    epc = bytes.fromhex(epc_hex)
    code = tv(TV_EPC_96, epc) if len(epc) == 12 else tlv(EPC_DATA, struct.pack(">H", 8 * len(epc)) + epc)
    fields = struct.pack(">BHBHBbBQBH", 0x80 | TV_ANTENNA_ID, antenna, 0x80 | TV_CHANNEL_INDEX, channel,
                         0x80 | TV_PEAK_RSSI, rssi_dbm, 0x80 | TV_FIRST_SEEN_UTC, first_seen_us,
                         0x80 | TV_TAG_SEEN_COUNT, seen_count)
    return tlv(TAG_REPORT_DATA, code + fields)


def ro_access_report(msg_id: int, tags: Iterable[bytes]) -> bytes:
    return message(RO_ACCESS_REPORT, msg_id, b"".join(tags))

