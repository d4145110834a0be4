"""Customer KPIs from what was observed, per customer and period (pandas).

A shipment belongs to the period in which its record was created (`demands.created_at` in
[start, end)). Each rate is over the shipments it can be judged on (its denominator is stated in
docs/crm.md) and is None, not 0, when there are none. Complaints, damage reports and ratings count
in the period in which they were filed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import psycopg

from locales import text
from storage.vocabulary import EXCEPTION_TYPES

KPI_COLUMNS = ("shipments", "on_time_shipping", "on_time_arrival", "fulfilment", "rush_completion",
               "exceptions_per_100", "damage_rate", "complaint_rate", "mean_transit_h", "mean_door_dwell_min",
               "mean_pod_min", "mean_rating")

_SHIPMENTS = """
SELECT d.id, d.customer_id, d.rush, d.pickup_to, d.delivery_to, d.status,
       min(e.ts) FILTER (WHERE e.status = 'loading') AS loading_at,
       min(e.ts) FILTER (WHERE e.status = 'in_transit') AS departed_at,
       min(e.ts) FILTER (WHERE e.status = 'arrived') AS arrived_at,
       min(e.ts) FILTER (WHERE e.status = 'delivered') AS delivered_at,
       (SELECT count(*) FROM demand_items i WHERE i.demand_id = d.id) AS items,
       (SELECT count(delivered_at) FROM demand_items i WHERE i.demand_id = d.id) AS items_delivered
FROM demands d LEFT JOIN shipment_events e ON e.demand_id = d.id
WHERE d.created_at >= %(start)s AND d.created_at < %(end)s
  AND (%(customer)s::text IS NULL OR d.customer_id = %(customer)s)
GROUP BY d.id
"""
_EXCEPTIONS = """
SELECT d.customer_id, x.type, count(*) AS n FROM exceptions x JOIN demands d ON d.id = x.demand_id
WHERE d.created_at >= %(start)s AND d.created_at < %(end)s
  AND (%(customer)s::text IS NULL OR d.customer_id = %(customer)s)
GROUP BY d.customer_id, x.type
"""
_FEEDBACK = """
SELECT customer_id, count(*) FILTER (WHERE kind = 'complaint') AS complaints,
       count(*) FILTER (WHERE kind = 'damage') AS damages, avg(rating)::float AS mean_rating
FROM feedback WHERE created_at >= %(start)s AND created_at < %(end)s
  AND (%(customer)s::text IS NULL OR customer_id = %(customer)s)
GROUP BY customer_id
"""


def _frame(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description or []])


def _share(flags: pd.Series) -> pd.Series:
    """Mean of booleans per customer over the rows where the flag is known (NA rows do not count)."""
    return flags.dropna().astype(float).groupby(level=0).mean()


def kpis(conn: psycopg.Connection, start: datetime, end: datetime, customer_id: str | None = None) -> pd.DataFrame:
    """One row per customer (index customer_id) with KPI_COLUMNS and `exceptions_<type>` per 100."""
    params = {"start": start, "end": end, "customer": customer_id}
    s = _frame(conn, _SHIPMENTS, params)
    customers = _frame(conn, "SELECT id AS customer_id FROM customers WHERE (%(customer)s::text IS NULL OR id = "
                             "%(customer)s)", params).set_index("customer_id")
    out = pd.DataFrame(index=customers.index)
    out["shipments"] = s.groupby("customer_id").size().reindex(out.index, fill_value=0)
    s = s.set_index("customer_id")
    for column in ("pickup_to", "delivery_to", "loading_at", "departed_at", "arrived_at", "delivered_at"):
        s[column] = pd.to_datetime(s[column], utc=True)
    departed, arrived = s["departed_at"].notna(), s["arrived_at"].notna()
    out["on_time_shipping"] = _share((s["departed_at"] <= s["pickup_to"]).where(departed & s["pickup_to"].notna()))
    out["on_time_arrival"] = _share((s["arrived_at"] <= s["delivery_to"]).where(arrived & s["delivery_to"].notna()))
    out["fulfilment"] = _share((s["items_delivered"] >= s["items"]).where(arrived))
    rush_done = s["delivered_at"].notna() & ((s["delivered_at"] <= s["delivery_to"]) | s["delivery_to"].isna())
    out["rush_completion"] = _share(rush_done.where(s["rush"].astype(bool)))
    out["mean_transit_h"] = ((s["arrived_at"] - s["departed_at"]).dt.total_seconds() / 3600).groupby(level=0).mean()
    out["mean_door_dwell_min"] = ((s["departed_at"] - s["loading_at"]).dt.total_seconds() / 60).groupby(
        level=0).mean()
    out["mean_pod_min"] = ((s["delivered_at"] - s["arrived_at"]).dt.total_seconds() / 60).groupby(level=0).mean()

    x = _frame(conn, _EXCEPTIONS, params)
    per_type = (x.pivot_table(index="customer_id", columns="type", values="n", aggfunc="sum")
                .reindex(index=out.index, columns=list(EXCEPTION_TYPES)).fillna(0))
    shipments = out["shipments"].where(out["shipments"] > 0)
    for kind in EXCEPTION_TYPES:
        out[f"exceptions_{kind}"] = per_type[kind] * 100 / shipments
    out["exceptions_per_100"] = per_type.sum(axis=1) * 100 / shipments

    f = _frame(conn, _FEEDBACK, params).set_index("customer_id").reindex(out.index)
    out["damage_rate"] = f["damages"].fillna(0) / shipments
    out["complaint_rate"] = f["complaints"].fillna(0) / shipments
    out["mean_rating"] = f["mean_rating"]
    return out.astype(float).astype(object).where(out.notna(), None)


@dataclass(frozen=True, slots=True)
class AbcThresholds:
    a: float = 0.80  # top customers making up 80 % of the volume
    b: float = 0.95  # the next 15 %; the rest is C


def abc(volume: pd.Series, t: AbcThresholds = AbcThresholds()) -> pd.DataFrame:
    """Pareto classes by volume: customers sorted by volume (ties by id); a customer is A while the
    customers before it hold less than `a` of the total, B below `b`, else C. No volume: C."""
    ordered = volume.rename("volume").rename_axis("customer_id").reset_index().sort_values(
        ["volume", "customer_id"], ascending=[False, True])
    total = ordered["volume"].sum()
    before = (ordered["volume"].cumsum() - ordered["volume"]) / total if total > 0 else ordered["volume"] * 0 + 1
    ordered["share"] = ordered["volume"] / total if total > 0 else 0.0
    ordered["cumulative_share"] = before + ordered["share"]
    ordered["class"] = "C"
    ordered.loc[(before < t.b) & (ordered["volume"] > 0), "class"] = "B"
    ordered.loc[(before < t.a) & (ordered["volume"] > 0), "class"] = "A"
    return ordered.set_index("customer_id")


# What each service level promises: the perceived performance it takes to meet expectation.
EXPECTATION = {"economy": 0.85, "standard": 0.90, "premium": 0.95}


def satisfaction(row: dict[str, Any], service_level: str) -> float | None:
    """100 × perceived performance / expectation; 100 means the service level's promise was met.
    Performance is the mean of what is known of: on-time arrival, fulfilment, 1 − damage rate and the
    mean rating scaled to [0, 1]."""
    parts = [row.get("on_time_arrival"), row.get("fulfilment"),
             None if row.get("damage_rate") is None else 1 - min(1.0, row["damage_rate"]),
             None if row.get("mean_rating") is None else (row["mean_rating"] - 1) / 4]
    known = [p for p in parts if p is not None]
    if not known:
        return None
    return round(100 * (sum(known) / len(known)) / EXPECTATION.get(service_level, EXPECTATION["standard"]), 1)


def churn_risk(current: pd.Series, previous: pd.DataFrame, drop: float, language: str) -> pd.DataFrame:
    """Customers whose volume this period fell by at least `drop` against the mean of the previous
    periods (columns of `previous`), with the reason in words in `language`."""
    baseline = previous.mean(axis=1).reindex(current.index).fillna(0)
    change = (current - baseline) / baseline.where(baseline > 0)
    risky = change[change <= -drop]
    return pd.DataFrame({"volume": current[risky.index], "baseline": baseline[risky.index].round(1),
                         "change": risky.round(3),
                         "reason": [text("risk.reason", language, change=f"{c:+.0%}", periods=previous.shape[1])
                                    for c in risky]})
