"""`salesopt report`: a static, self-contained HTML report (plus PNG charts) for one as_of.

The folder holds `report.html` and its PNG files; nothing is loaded from the network. Sections:
headline KPIs, history + forecast for the top products, forecast accuracy vs. the seasonal-naive
baseline, segments and migration, recommendation metrics vs. popularity, replenishment and price
suggestions, anomalies, and data quality (quarantine by reason, expectations).
"""

from __future__ import annotations

import html
import logging
from datetime import date
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession

from salesopt.io.tables import Warehouse
from salesopt.report import charts
from salesopt.report.data import ReportData, collect

log = logging.getLogger(__name__)

SECTIONS = (
    "Headline KPIs",
    "History and forecast",
    "Forecast accuracy",
    "Customer segments",
    "Recommendations",
    "Replenishment",
    "Price suggestions",
    "Anomalies",
    "Data quality",
)
CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:2em auto;max-width:1000px;color:#222}
h1{color:#1f4e79}h2{border-bottom:2px solid #1f4e79;padding-bottom:4px;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eef3f8}
.kpis{display:flex;gap:16px;flex-wrap:wrap}
.kpi{background:#eef3f8;padding:10px 16px;border-radius:6px}
.kpi b{display:block;font-size:22px}.missing{color:#a00}
"""


def _table(df: pd.DataFrame | None, missing: str) -> str:
    if df is None:
        return (
            f'<p class="missing">Not available: {html.escape(missing)} has not been produced.</p>'
        )
    if df.empty:
        return "<p>No rows.</p>"
    return df.to_html(index=False, float_format=lambda v: f"{v:,.3f}", border=0, na_rep="")


def _img(name: str | None) -> str:
    return f'<img src="{name}" alt="{name}" style="max-width:100%">' if name else ""


def _kpis(data: ReportData) -> str:
    labels = {
        "revenue_last_13_weeks": "Net revenue, last 13 weeks",
        "revenue_previous_13_weeks": "Net revenue, previous 13 weeks",
        "units_last_13_weeks": "Units, last 13 weeks",
        "active_products_13_weeks": "Products sold, last 13 weeks",
    }
    cards = "".join(
        f'<div class="kpi">{html.escape(label)}<b>{data.kpis[key]:,.0f}</b></div>'
        for key, label in labels.items()
        if key in data.kpis
    )
    return f'<div class="kpis">{cards}</div>' if cards else _table(None, "gold/sales_weekly")


def render(data: ReportData, images: dict[str, str | None]) -> str:
    body = [
        f"<h1>salesopt report, as of {data.as_of.isoformat()}</h1>",
        f"<h2>{SECTIONS[0]}</h2>", _kpis(data), _img(images["weekly_revenue"]),
        f"<h2>{SECTIONS[1]}</h2><p>Top products by units in the last 13 weeks.</p>",
        _img(images["history_and_forecast"]) or _table(None, "gold/sales_weekly"),
        f"<h2>{SECTIONS[2]}</h2>", _img(images["forecast_accuracy"]),
        _table(data.forecast_overall, "gold/forecast_metrics"),
        _table(data.forecast_status, "gold/forecast_status"),
        f"<h2>{SECTIONS[3]}</h2>", _img(images["segments"]),
        _table(data.segments, "gold/segment_profiles"),
        "<h3>Migration since the previous as_of</h3>",
        _table(data.migration, "gold/segment_migration"),
        f"<h2>{SECTIONS[4]}</h2>", _img(images["recommendations"]),
        _table(data.rec_metrics, "gold/recommendation_metrics"),
        f"<h2>{SECTIONS[5]}</h2>", _table(data.replenishment, "gold/replenishment_plan"),
        f"<h2>{SECTIONS[6]}</h2>", _table(data.prices, "gold/price_recommendations"),
        f"<h2>{SECTIONS[7]}</h2>", _table(data.anomalies, "gold/sales_anomalies"),
        f"<h2>{SECTIONS[8]}</h2><h3>Quarantined lines by reason</h3>",
        _table(data.quarantine, "quarantine/orders_rejected"),
        "<h3>Expectations</h3>", _table(data.quality, "ops/quality_results"),
    ]  # fmt: skip
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>salesopt report {data.as_of.isoformat()}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )


def build_report(spark: SparkSession, warehouse: Warehouse, as_of: date, out: Path) -> Path:
    """Writes `out/report.html` and its charts; returns the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    data = collect(spark, warehouse, as_of)
    images = {chart.__name__: chart(data, out) for chart in charts.ALL}
    path = out / "report.html"
    path.write_text(render(data, images))
    if data.missing:
        log.warning("report sections without data: %s", ", ".join(sorted(set(data.missing))))
    log.info("report written to %s", path)
    return path
