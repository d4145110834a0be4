"""The values drivers produce. Everything downstream speaks in these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class TagRead:
    """One raw read of one UHF/LF tag by one antenna."""

    epc: str  # upper-case hex
    antenna: int
    rssi_dbm: float | None
    read_at: datetime  # timezone-aware UTC, gateway clock
    reader: str = ""
    frequency_khz: int | None = None
    phase: int | None = None


@dataclass(frozen=True, slots=True)
class Fix:
    """One GPS epoch's position solution; unknown values are None."""

    ts: datetime  # timezone-aware UTC, receiver time
    lat: float
    lon: float
    speed_kmh: float | None = None
    course_deg: float | None = None
    hdop: float | None = None
    sats: int | None = None
    quality: int | None = None
    alt_m: float | None = None
    alarms: tuple[str, ...] = ()  # what the terminal raised with it (JT/T 808 alarm bits by name)


@dataclass(frozen=True, slots=True)
class VehicleFix:
    """A fix from a source that serves many vehicles (a telematics platform), with the vehicle it is of."""

    vehicle: str
    fix: Fix
    backfill: bool = False  # recorded out of coverage and sent later (a JT/T 808 blind-area batch): history
