"""What `config validate` checks beyond the profile's models, on the raw YAML data so that each check
runs whatever else is wrong: read power per antenna against its reader's region, and the files a
profile names (password, CA certificate, outbox folder). Also the words for pydantic's messages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.failures import pydantic_message

Loc = tuple[int | str, ...]
Problem = tuple[Loc, str]

# The profile models' patterns in words: a technician reads "1 to 64 of a-z, 0-9 and -", not a regex.
PATTERNS = {
    r"^[a-z0-9-]{1,64}$": "1 to 64 of a-z, 0-9 and -",
    r"^mqtts?://": "an mqtt:// or mqtts:// URL",
    r"^[0-9a-zA-Z.:-]+:[0-9]{1,5}$": "HOST:PORT",
    r"^[A-Za-z0-9._-]{1,64}$": "1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'",
    r"^[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}$": "SITE/DOOR, each 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'",
}


def describe(error: dict[str, Any]) -> str:
    """A pydantic error's message without its machinery: no 'Value error, ' prefix, no raw regex."""
    ctx = error.get("ctx") or {}
    if error["type"] == "string_pattern_mismatch" and ctx.get("pattern") in PATTERNS:
        return f"{error['input']!r} is not {PATTERNS[ctx['pattern']]}"
    return pydantic_message(error)


def power_outside(power: float, region: str, regions: dict[str, tuple[str, float]], min_dbm: float) -> str | None:
    """The rule, for the model and for the per-antenna report alike: within min_dbm and the region's limit."""
    band, limit = regions[region]
    if min_dbm <= power <= limit:
        return None
    return f"{float(power)} dBm outside {min_dbm}..{limit} dBm allowed in region {region} ({band} MHz)"


def power_problems(data: dict[str, Any], regions: dict[str, tuple[str, float]], min_dbm: float) -> Iterator[Problem]:
    """Every antenna whose read power is outside its reader's region, at the antenna's own field."""
    readers = data.get("readers")
    for r, reader in enumerate(readers if isinstance(readers, list) else []):
        if not isinstance(reader, dict) or reader.get("region", "EU") not in regions:
            continue
        antennas = reader.get("antennas")
        for a, antenna in enumerate(antennas if isinstance(antennas, list) else []):
            power = antenna.get("power_dbm") if isinstance(antenna, dict) else None
            if (isinstance(power, int | float) and not isinstance(power, bool)
                    and (problem := power_outside(power, reader.get("region", "EU"), regions, min_dbm))):
                yield ("readers", r, "antennas", a, "power_dbm"), problem


def file_problems(data: dict[str, Any]) -> Iterator[Problem]:
    """The files the gateway will open: the broker password and CA certificate must be readable files,
    the outbox's folder must exist or be creatable, and writable."""
    gateway = data.get("gateway") if isinstance(data.get("gateway"), dict) else {}
    for field in ("password_file", "tls_ca_file"):
        value = gateway.get(field)
        if isinstance(value, str) and (why := _unreadable(Path(value))):
            yield ("gateway", field), f"{value}: {why}"
    outbox = gateway.get("outbox", "var/outbox.sqlite")
    if isinstance(outbox, str) and (why := _unwritable(Path(outbox).parent)):
        yield ("gateway", "outbox"), f"{outbox}: {why}"


def _unreadable(path: Path) -> str | None:
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a file"
    return None if os.access(path, os.R_OK) else "not readable by this user"


def _unwritable(folder: Path) -> str | None:
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK):
        return f"{existing} is not writable by this user" if existing == folder.absolute() else (
            f"cannot create {folder}: {existing} is not writable by this user")
    return None
