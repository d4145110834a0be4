"""The ETA of a shipment in transit, after its vehicle's fixes, with a p10-p90 band: from the
fleet's own history where there is enough of it (crm_link/eta_model.py), else the distance left along
its planned route over a smoothed recent speed, clamped to what a truck plausibly keeps up. Kept in
`demands` (eta, eta_p10, eta_p90, eta_method); `eta_history` gets a row whenever it moves by more than
noise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from crm_link import eta_inputs, eta_model
from crm_link.geo import pieces_ahead, remaining_m
from crm_link.grid import cells
from crm_link.ledger import EtaChange, Ledger
from crm_link.thresholds import Thresholds

HISTORY_STEP = timedelta(minutes=1)  # smaller moves of the ETA are noise, not history
# A shipment's ETA is made again at most this often (in its vehicle's time): it moves by minutes, fixes
# come every few seconds, and each forecast from history reads the profile and the past trips.
REFRESH = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class Estimate:
    eta: datetime
    p10: datetime
    p90: datetime
    method: str


def estimate(at: datetime, remaining: float, speed_kmh: float, t: Thresholds) -> datetime:
    """The fall-back: the distance left at the smoothed speed, bounded."""
    speed = min(max(speed_kmh, t.eta_min_speed_kmh), t.eta_max_speed_kmh)
    return at + timedelta(seconds=remaining / (speed / 3.6))


def forecast(cur: psycopg.Cursor, demand: dict[str, Any], fix: dict[str, Any], speed_kmh: float,
             t: Thresholds, seen: eta_inputs.Overview | None = None) -> eta_model.Forecast | None:
    """The time to go of the demand from this fix, by every method that can answer and the one given;
    None when its destination has no place. Reads nothing of the vehicle after the fix. `seen`: the
    history's overview, when the caller has read it."""
    if demand["d_lat"] is None:
        return None
    at, here, dest = fix["ts"], (fix["lat"], fix["lon"]), (demand["d_lat"], demand["d_lon"])
    remaining = remaining_m(demand["planned_route"], *here, *dest)
    at_s, conn = at.timestamp(), cur.connection
    by = {"speed": (estimate(at, remaining, speed_kmh, t) - at).total_seconds()}
    seen = seen or eta_inputs.overview(conn)
    if seen.median_kmh:
        by["naive"] = remaining / (seen.median_kmh / 3.6)
    if seen.pairs >= eta_model.MIN_PAIRS or seen.trips:
        recent = eta_inputs.recent_fixes(conn, demand["vehicle_id"], at_s, *here)
        trips = eta_inputs.past_trips(conn, *here, *dest) if seen.trips else []
        route = demand["planned_route"] or eta_model.median_route(trips, *here, *dest)
        radius = demand.get("d_radius") or 0.0  # arrived on entering it: the route ahead ends there
        ahead = eta_model.Ahead(*pieces_ahead(route, *here, eta_model.PIECE_M)).until(*dest, radius)
        hours = eta_inputs.hours_ahead(at_s - eta_model.LIVE_WINDOW_S, remaining, t.eta_min_speed_kmh)
        view = eta_inputs.profile(conn, seen, np.unique(np.r_[ahead.cells, cells(recent.lat, recent.lon)]).tolist(),
                                  hours)
        by |= eta_model.estimates(at_s, ahead, recent, view, eta_model.passages(trips, at_s, recent, dest, radius),
                                  seen.calibration.fade_m)
    return eta_model.choose(by, seen.calibration)


def stored(demand: dict[str, Any]) -> Estimate | None:
    if demand.get("eta") is None:
        return None
    return Estimate(demand["eta"], demand["eta_p10"] or demand["eta"], demand["eta_p90"] or demand["eta"],
                    demand["eta_method"] or "speed")


def update(led: Ledger, cur: psycopg.Cursor, demand: dict[str, Any], fix: dict[str, Any], speed_kmh: float,
           t: Thresholds, newest: bool = True) -> Estimate | None:
    """The ETA of the demand after this fix, kept in the ledger: made at its first fix in transit, then
    again from the vehicle's newest fix of a batch once the stored one is older than REFRESH; else the
    stored one. None when its destination has no place."""
    made = demand.get("eta_computed_at")
    if made is not None and (not newest or timedelta(0) <= fix["ts"] - made < REFRESH):
        return stored(demand)
    if "history" not in led.memo:  # what the history holds over all: read once a batch
        led.memo["history"] = eta_inputs.overview(cur.connection)
    f = forecast(cur, demand, fix, speed_kmh, t, led.memo["history"])
    if f is None:
        return None
    at = fix["ts"]
    new = Estimate(*(at + timedelta(seconds=s) for s in (f.to_go_s, f.p10_s, f.p90_s)), f.method)
    moved = demand["eta"] is None or abs(new.eta - demand["eta"]) >= HISTORY_STEP
    led.record_eta(demand, EtaChange(demand["id"], at, new.eta, new.p10, new.p90, new.method,
                                     remaining_m(demand["planned_route"], fix["lat"], fix["lon"], demand["d_lat"],
                                                 demand["d_lon"]), speed_kmh, fix["id"], moved))
    return new
