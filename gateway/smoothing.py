"""From raw reads to observations: one per tag per passage of a read point.

A window per (EPC, read point) collects first/last seen, read count, peak RSSI and the antenna and
portal side of each read. It closes when the tag has been absent for `absent_s` or has been held for
`max_hold_s` (a parked tag is re-reported, never held forever). Time is passed in, never read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from common.contract import iso_ms
from firmware_configs.profile import Smoothing

Side = str | None  # "outer" | "inner" | None


@dataclass
class _Window:
    epc: str
    read_point: str
    reader: str
    first_seen: datetime
    last_seen: datetime
    reads: int = 0
    peak_rssi: float | None = None
    antenna: int = 0
    side_peaks: dict[str, tuple[float, datetime]] = field(default_factory=dict)  # side → (peak rssi, when)

    def add(self, rssi: float | None, antenna: int, side: Side, at: datetime) -> None:
        self.reads += 1
        self.last_seen = max(self.last_seen, at)
        if rssi is not None and (self.peak_rssi is None or rssi > self.peak_rssi):
            self.peak_rssi, self.antenna = rssi, antenna
        elif self.peak_rssi is None:
            self.antenna = antenna
        if side and rssi is not None and (side not in self.side_peaks or rssi > self.side_peaks[side][0]):
            self.side_peaks[side] = (rssi, at)

    def direction(self) -> str | None:
        """A tag that peaked outside before inside came in; ambiguous passages stay None."""
        if len(self.side_peaks) < 2:
            return None
        outer, inner = self.side_peaks["outer"][1], self.side_peaks["inner"][1]
        if outer == inner:
            return None
        return "in" if outer < inner else "out"

    def overlaps(self, other: _Window) -> bool:
        return self.first_seen <= other.last_seen and other.first_seen <= self.last_seen


class Smoother:
    def __init__(self, settings: Smoothing) -> None:
        self.s = settings
        self._absent = timedelta(seconds=settings.absent_s)
        self._max_hold = timedelta(seconds=settings.max_hold_s)
        self._windows: dict[tuple[str, str], _Window] = {}
        self._closed: list[_Window] = []  # ended when a later read arrived, reported by the next due()
        self.raw_reads = 0
        self.stray = 0
        self.arbitrated = 0

    def add(self, epc: str, read_point: str, reader: str, antenna: int, side: Side, rssi: float | None,
            at: datetime) -> None:
        self.raw_reads += 1
        key = (epc, read_point)
        window = self._windows.get(key)
        if window is not None and self._ended(window, at):  # reads that waited longer than a tick
            self._closed.append(self._windows.pop(key))
            window = None
        if window is None:
            window = self._windows[key] = _Window(epc, read_point, reader, at, at)
        window.add(rssi, antenna, side, at)

    def _ended(self, w: _Window, now: datetime) -> bool:
        return now - w.last_seen >= self._absent or now - w.first_seen >= self._max_hold

    def due(self, now: datetime, everything: bool = False) -> list[dict[str, Any]]:
        """Observations of the passages that ended by `now` (all open ones with `everything`)."""
        ending = [w for w in self._windows.values() if everything or self._ended(w, now)]
        for w in ending:
            del self._windows[(w.epc, w.read_point)]
        closed, self._closed = self._closed + ending, []
        out = []
        for w in closed:
            if w.reads < self.s.min_reads or (w.peak_rssi is not None and w.peak_rssi < self.s.min_rssi_dbm):
                self.stray += 1
                continue
            if self._outshone(w, closed):
                self.arbitrated += 1
                continue
            out.append(self._observation(w))
        return out

    def _outshone(self, w: _Window, closed: list[_Window]) -> bool:
        """Cross-door arbitration: the same tag heard at the same time at another read point more strongly."""
        rivals = [o for o in (*closed, *self._windows.values())
                  if o.epc == w.epc and o.read_point != w.read_point and o.overlaps(w)]
        mine = w.peak_rssi if w.peak_rssi is not None else -999.0
        return any((o.peak_rssi if o.peak_rssi is not None else -999.0) > mine for o in rivals)

    @staticmethod
    def _observation(w: _Window) -> dict[str, Any]:
        return {"epc": w.epc, "read_point": w.read_point, "reader": w.reader, "antenna": w.antenna,
                "rssi_dbm": w.peak_rssi, "reads": w.reads, "first_seen": iso_ms(w.first_seen),
                "last_seen": iso_ms(w.last_seen), "direction": w.direction()}

    @property
    def open_windows(self) -> int:
        return len(self._windows)
