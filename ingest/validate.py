"""Check one MQTT message against the contract and turn it into rows, or into a rejection reason."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import fastjsonschema

from common import epc as epc_codec
from common.contract import KINDS, json_schema, parse_topic

# Times outside [EARLIEST, receipt + max ahead] are clock faults, not data: a receiver's week rollover
# lands ~19.6 years off, an unset RTC in 1970 or 2000, a gateway's clock days fast. A state message
# with one is rejected whole; an event with one is quarantined alone (a dead letter of its own), so it
# never becomes a vehicle's latest position or a shipment's time, and the rest of its batch lands.
EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)
MAX_AHEAD = timedelta(minutes=5)
# PostgreSQL text and jsonb cannot hold NUL, and UTF-8 cannot encode a lone surrogate; JSON can
# carry both as \u escapes.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _compile(name: str) -> Callable[[Any], Any]:
    # The contract's schemas use only keywords draft-07 shares with 2020-12; fastjsonschema turns
    # them into Python code, ~20x faster than interpreting them on every event.
    return fastjsonschema.compile({**json_schema(name), "$schema": "http://json-schema.org/draft-07/schema#"})


_VALIDATORS = {name: _compile(name) for name in KINDS.values()}


class Rejected(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class Rows:
    """Rows of one message, in the column order of the target tables."""

    observations: list[tuple[Any, ...]] = field(default_factory=list)
    positions: list[tuple[Any, ...]] = field(default_factory=list)
    states: list[tuple[Any, ...]] = field(default_factory=list)
    quarantined: list[tuple[bytes, str]] = field(default_factory=list)  # (the event as JSON, reason)
    vehicles: set[str] = field(default_factory=set)
    read_points: set[str] = field(default_factory=set)


class Quarantined(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _time(value: str, now: datetime, max_ahead: timedelta) -> datetime:
    """The time of a wire timestamp; Rejected when it is not one, Quarantined when it cannot be true."""
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected("bad time", value[:40]) from None
    if ts.tzinfo is None:
        raise Rejected("bad time", f"{value} has no time zone")
    if ts < EARLIEST:
        raise Quarantined("time out of range", f"{value} is before {EARLIEST.year}")
    if ts > now + max_ahead:
        raise Quarantined("time ahead", f"{value} is {_span(ts - now)} after its receipt at {now.isoformat()}")
    return ts


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return f"{seconds / 86400:.1f} d" if seconds >= 86400 else f"{seconds / 3600:.1f} h" if seconds >= 3600 \
        else f"{seconds:.0f} s"


# Fields the contract calls integers. JSON Schema's `integer` also admits 7.0, which the database's
# binary COPY refuses: these must be JSON integers exactly.
INTEGERS = {"rfid": ("seq", "antenna", "reads"), "gps": ("seq", "sats", "quality")}


def _integers(kind: str, events: list[dict[str, Any]]) -> None:
    for i, event in enumerate(events):
        for name in INTEGERS[kind]:
            if isinstance(event[name], float):
                raise Rejected("schema violation", f"events[{i}].{name} is {event[name]!r}, not an integer")


def _no_constants(name: str) -> float:
    raise Rejected("invalid json", f"{name} is not a JSON number")  # Python's json would take NaN


def _storable(value: Any) -> bool:
    """No string (key or value) at any depth holds NUL or a lone surrogate. Iterative: depth is
    whatever the JSON parser accepted."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _epc_uri(epc: str) -> str | None:
    try:
        return epc_codec.decode(epc).uri
    except epc_codec.EpcError:
        return None  # raw test EPCs and unprogrammed tags are kept, just not linked to an identity


def parse(topic: str, payload: bytes, max_bytes: int, now: datetime | None = None,
          max_ahead: timedelta = MAX_AHEAD) -> Rows:
    """Rows of a valid message (and its quarantined events); raises Rejected with a short reason otherwise."""
    now = now or datetime.now(UTC)
    parsed = parse_topic(topic)
    if parsed is None:
        raise Rejected("bad topic", topic)
    gateway_id, kind = parsed
    if len(payload) > max_bytes:
        raise Rejected("oversized", f"{len(payload)} bytes > {max_bytes}")
    try:
        body = json.loads(payload, parse_constant=_no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected("invalid json", str(exc)[:200]) from None
    except RecursionError:
        raise Rejected("invalid json", "nested too deeply") from None
    # Escapes are the only way to smuggle NUL or a surrogate in; most payloads have none.
    if b"\\u" in payload and not _storable(body):
        raise Rejected("unstorable text", "a string holds NUL or a lone surrogate")
    if not isinstance(body, dict) or body.get("schema") != KINDS[kind]:
        raise Rejected("wrong schema", f"topic {kind} needs {KINDS[kind]}")
    try:
        _VALIDATORS[KINDS[kind]](body)
    except fastjsonschema.JsonSchemaValueException as error:
        raise Rejected("schema violation", error.message[:300]) from None
    if body["gateway"] != gateway_id:
        raise Rejected("gateway mismatch", f"topic {gateway_id}, body {body['gateway']}")
    if kind in INTEGERS:
        _integers(kind, body["events"])
    rows = Rows()
    for e in body["events"] if kind != "state" else ():
        try:
            if kind == "rfid":
                first, last = _time(e["first_seen"], now, max_ahead), _time(e["last_seen"], now, max_ahead)
                if first > last:
                    raise Rejected("bad time", f"seq {e['seq']}: first_seen after last_seen")
                rows.observations.append((gateway_id, e["seq"], last, e["epc"], _epc_uri(e["epc"]), e["read_point"],
                                          e["reader"], e["antenna"], e["rssi_dbm"], e["reads"], first,
                                          e["direction"]))
                rows.read_points.add(e["read_point"])
            else:
                rows.positions.append((gateway_id, e["seq"], _time(e["ts"], now, max_ahead), e["vehicle"], e["lat"],
                                       e["lon"], e["speed_kmh"], e["course_deg"], e["hdop"], e["sats"],
                                       e["quality"], e["alt_m"], e.get("alarms")))
                rows.vehicles.add(e["vehicle"])
        except Quarantined as exc:
            rows.quarantined.append((json.dumps(e, separators=(",", ":")).encode(), str(exc)))
    if kind == "state":
        try:
            state = json.dumps(body, allow_nan=False)
            ts = _time(body["ts"], now, max_ahead)
        except ValueError:
            raise Rejected("invalid json", "a number too large for a float") from None  # 1e400 → inf
        except Quarantined as exc:
            raise Rejected(exc.reason, str(exc).split(": ", 1)[1]) from None
        rows.states.append((gateway_id, 0, ts, body["state"], state))
    return rows
