"""The ETA of a shipment in transit: the distance left along its planned route over a smoothed recent
speed, clamped to what a truck plausibly keeps up. Kept in `demands.eta`; `eta_history` gets a row
whenever it moves by more than noise."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from crm_link.geo import remaining_m
from crm_link.thresholds import Thresholds

HISTORY_STEP = timedelta(minutes=1)  # smaller moves of the ETA are noise, not history


def estimate(at: datetime, remaining: float, speed_kmh: float, t: Thresholds) -> datetime:
    speed = min(max(speed_kmh, t.eta_min_speed_kmh), t.eta_max_speed_kmh)
    return at + timedelta(seconds=remaining / (speed / 3.6))


def update(cur: psycopg.Cursor, demand: dict[str, Any], fix: dict[str, Any], speed_kmh: float,
           t: Thresholds) -> datetime | None:
    """The new ETA of the demand after this fix, stored; None when its destination has no place."""
    if demand["d_lat"] is None:
        return None
    at = fix["ts"]
    remaining = remaining_m(demand["planned_route"], fix["lat"], fix["lon"], demand["d_lat"], demand["d_lon"])
    predicted = estimate(at, remaining, speed_kmh, t)
    cur.execute("UPDATE demands SET eta = %s, eta_computed_at = %s WHERE id = %s", (predicted, at, demand["id"]))
    if demand["eta"] is None or abs(predicted - demand["eta"]) >= HISTORY_STEP:
        cur.execute("INSERT INTO eta_history (demand_id, computed_at, eta, remaining_m, speed_kmh, position_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (demand["id"], at, predicted, remaining, speed_kmh, fix["id"]))
    return predicted
