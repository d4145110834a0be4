"""MQTT contract v1 (ARCHITECTURE §4): topics (and their NATS subjects), schema names, wire formats. Shared by
gateway and ingest."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

TOPIC_ROOT = "cargotrace/v1"
RFID_SCHEMA = "cargotrace.rfid/1"
GPS_SCHEMA = "cargotrace.gps/1"
STATE_SCHEMA = "cargotrace.state/1"
KINDS = {"rfid": RFID_SCHEMA, "gps": GPS_SCHEMA, "state": STATE_SCHEMA}

GATEWAY_ID = re.compile(r"^[a-z0-9-]{1,64}$")
_TOPIC = re.compile(r"^cargotrace/v1/([a-z0-9-]{1,64})/(rfid|gps|state)$")


def topic(gateway_id: str, kind: str) -> str:
    if not GATEWAY_ID.match(gateway_id):
        raise ValueError(f"gateway_id {gateway_id!r} must match [a-z0-9-]{{1,64}}")
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}, expected one of {sorted(KINDS)}")
    return f"{TOPIC_ROOT}/{gateway_id}/{kind}"


def parse_topic(name: str) -> tuple[str, str] | None:
    """(gateway_id, kind) of a contract topic, None for anything else."""
    m = _TOPIC.match(name)
    return (m.group(1), m.group(2)) if m else None


def subject_of(topic_name: str) -> str:
    """The NATS subject of an MQTT topic as NATS's MQTT listener maps it: `a/b/c` ↔ `a.b.c` (contract
    topics hold none of the characters it maps otherwise: dots, spaces, wildcards)."""
    return topic_name.replace("/", ".")


def topic_of(subject: str) -> str:
    """The MQTT topic a NATS subject stands for (whether a contract topic or not: `parse_topic` says). A
    subject holding a `/` came from no MQTT topic (the listener maps a topic's dots to `//`): it stays as it
    is, so that it cannot pass for one."""
    return subject if "/" in subject else subject.replace(".", "/")


NATS_SUBJECTS = subject_of(TOPIC_ROOT) + ".>"  # every contract message on the clustered broker


@cache
def json_schema(schema_name: str) -> dict[str, Any]:
    file = {RFID_SCHEMA: "rfid-1.json", GPS_SCHEMA: "gps-1.json", STATE_SCHEMA: "state-1.json"}[schema_name]
    return json.loads((resources.files("common") / "schemas" / file).read_text())


def iso_ms(ts: datetime) -> str:
    """UTC ISO 8601 with milliseconds, the wire format of every time."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def batch(schema_name: str, gateway_id: str, events: list[dict[str, Any]]) -> bytes:
    return json.dumps({"schema": schema_name, "gateway": gateway_id, "events": events},
                      separators=(",", ":")).encode()
