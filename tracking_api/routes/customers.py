"""Customer records and KPIs: the four information blocks, KPIs per period (JSON or CSV), ABC classes,
satisfaction and customers at risk of leaving."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import pandas as pd
import psycopg
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from crm_link import kpi_chart, kpis
from locales import text
from tracking_api import queries
from tracking_api.auth import require
from tracking_api.deps import db_read
from tracking_api.keys import Principal
from tracking_api.language import Lang
from tracking_api.models import AbcClasses, AtRiskCustomers, CustomerKpis, CustomerRecord
from tracking_api.params import Id
from tracking_api.problems import found
from tracking_api.refusal import Refusal

router = APIRouter(tags=["customers"])
CustomerPath = Id
Format = Annotated[Literal["json", "csv"] | None,
                  Query(alias="format", description="csv: the same numbers as a table; also Accept: text/csv")]
Accept = Annotated[str, Header()]
staff = require("dispatcher", "integration", "admin")
anyone = require("customer", "dispatcher", "integration", "admin")
MAX_PERIOD = timedelta(days=3 * 366)
TREND_PERIODS = 3  # earlier periods of the same length beside the satisfaction index
CSV = {200: {"content": {"text/csv": {}}, "description": "with ?format=csv or Accept: text/csv"}}


def period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """Default: the last 30 days."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    if not timedelta(0) < end - start <= MAX_PERIOD:
        raise Refusal(422, "problem.period", days=MAX_PERIOD.days)
    return start, end


def own(who: Principal, customer_id: str) -> None:
    if who.role == "customer" and who.customer_id != customer_id:
        raise Refusal(404, "problem.no_such.customer")  # as for an unknown id: existence is not confirmed


def wants_csv(fmt: str | None, accept: str) -> bool:
    return fmt == "csv" if fmt else "text/csv" in accept


def table(frame: pd.DataFrame, csv: bool, name: str, key: str) -> Any:
    if csv:
        out = io.StringIO()
        frame.to_csv(out, index_label="customer_id")
        return Response(out.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    rows = frame.astype(object).where(frame.notna(), None).reset_index(names="customer_id").to_dict("records")
    return {key: rows}


From = Annotated[AwareDatetime | None, Query(alias="from")]
To = Annotated[AwareDatetime | None, Query(alias="to")]


@router.get("/v1/customers/abc", response_model=AbcClasses, responses=CSV)
def abc_classes(request: Request, start: From = None, end: To = None, fmt: Format = None, accept: Accept = "",
                who: Principal = Depends(staff), c: psycopg.Connection = Depends(db_read)) -> Any:
    """Pareto classes by shipment volume in the period (A: top 80 %, B: next 15 %, C: the rest)."""
    volume = kpis.kpis(c, *period(start, end))["shipments"].astype(int)
    settings = request.app.state.settings
    classes = kpis.abc(volume, kpis.AbcThresholds(settings.abc_a, max(settings.abc_a, settings.abc_b)))
    return table(classes, wants_csv(fmt, accept), "abc", "customers")


@router.get("/v1/customers/at-risk", response_model=AtRiskCustomers, responses=CSV)
def at_risk(language: Lang, start: From = None, end: To = None, periods: Annotated[int, Query(ge=1, le=12)] = 3,
            drop: Annotated[float, Query(gt=0, le=1)] = 0.3, fmt: Format = None, accept: Accept = "",
            who: Principal = Depends(staff), c: psycopg.Connection = Depends(db_read)) -> Any:
    """Churn signal: volume this period against the mean of the `periods` before it of the same length."""
    start, end = period(start, end)
    length = end - start
    current = kpis.kpis(c, start, end)["shipments"].astype(float)
    previous = pd.DataFrame({i: kpis.kpis(c, start - i * length, end - i * length)["shipments"].astype(float)
                             for i in range(1, periods + 1)})
    return table(kpis.churn_risk(current, previous, drop, language), wants_csv(fmt, accept), "at-risk", "customers")


@router.get("/v1/customers/{customer_id}/kpis", response_model=CustomerKpis, responses=CSV)
def customer_kpis(customer_id: CustomerPath, start: From = None, end: To = None, fmt: Format = None,
                  accept: Accept = "", who: Principal = Depends(anyone),
                  c: psycopg.Connection = Depends(db_read)) -> Any:
    own(who, customer_id)
    start, end = period(start, end)
    frame = kpis.kpis(c, start, end, customer_id)
    if frame.empty:
        raise Refusal(404, "problem.no_such.customer")
    level = found(queries.service_level(c, customer_id), "customer")
    frame["satisfaction"] = [kpis.satisfaction(row, level) for row in frame.to_dict("records")]
    if wants_csv(fmt, accept):
        return table(frame, True, f"kpis-{customer_id}", "kpis")
    length = end - start
    trend = [{"from": start - i * length, "to": end - i * length, "satisfaction": kpis.satisfaction(
        kpis.kpis(c, start - i * length, end - i * length, customer_id).iloc[0].to_dict(), level)}
        for i in range(TREND_PERIODS, 0, -1)]
    return {"customer_id": customer_id, "from": start, "to": end,
            "kpis": frame.astype(object).where(frame.notna(), None).iloc[0].to_dict(),
            "satisfaction_trend": trend}


@router.get("/v1/customers/{customer_id}/kpis/{kpi}.svg", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}, "description": "an SVG bar chart"}})
def kpi_chart_svg(language: Lang, customer_id: CustomerPath, kpi: Literal[kpis.KPI_COLUMNS], start: From = None,
                  end: To = None, periods: Annotated[int, Query(ge=1, le=24)] = 6, who: Principal = Depends(anyone),
                  c: psycopg.Connection = Depends(db_read)) -> Response:
    """One KPI over `periods` consecutive periods of the same length, the last being [from, to)."""
    own(who, customer_id)
    start, end = period(start, end)
    length = end - start
    frames = [(start - i * length, kpis.kpis(c, start - i * length, end - i * length, customer_id))
              for i in range(periods - 1, -1, -1)]
    if frames[-1][1].empty:
        raise Refusal(404, "problem.no_such.customer")
    points = [(since.date().isoformat(), frame.iloc[0][kpi]) for since, frame in frames]
    title = text("chart.title", language, customer=customer_id, kpi=text(f"kpi.{kpi}", language))
    return Response(kpi_chart.svg(title, points, text("chart.no_value", language)), media_type="image/svg+xml",
                    headers={"Content-Language": language})


@router.get("/v1/customers/{customer_id}", response_model=CustomerRecord)
def customer_record(customer_id: CustomerPath, who: Principal = Depends(anyone),
                    c: psycopg.Connection = Depends(db_read)) -> Any:
    """The customer record's four blocks: basic information, inquiries and feedback, logistics demand,
    demand changes."""
    own(who, customer_id)
    return found(queries.customer_record(c, customer_id), "customer")
