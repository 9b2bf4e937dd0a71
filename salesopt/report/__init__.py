"""`salesopt report`: one self-contained HTML report for a sales manager, for one as_of.

`report.html` embeds its PNG charts (data: URIs) and loads nothing from the network; beside it,
each table the report cuts is written whole as a CSV. Sections: headline KPIs, history and
forecast for the top products, forecast accuracy, customer segments, customers at risk,
strategy by segment, recommendations, replenishment, price suggestions, anomalies, and data
quality. Every section
says in one sentence what it shows and what to do with it.
"""

from __future__ import annotations

import base64
import html
import logging
from datetime import date
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession

from salesopt.io.tables import Warehouse
from salesopt.report import charts
from salesopt.report.data import TOP_ROWS, ReportData, collect

log = logging.getLogger(__name__)

SECTIONS = (
    "Headline KPIs",
    "History and forecast",
    "Forecast accuracy",
    "Customer segments",
    "Customers at risk",
    "Strategy by segment",
    "Recommendations",
    "Replenishment",
    "Price suggestions",
    "Anomalies",
    "Data quality",
)
CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:2em auto;max-width:1060px;color:#222}
h1{color:#1f4e79}h2{border-bottom:2px solid #1f4e79;padding-bottom:4px;margin-top:2em}
p.what{color:#444;max-width:800px}p.caption{color:#666;font-size:12px;margin:2px 0 12px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 8px}th{background:#eef3f8;text-align:left}
td.num{text-align:right}
.kpis{display:flex;gap:16px;flex-wrap:wrap}
.kpi{background:#eef3f8;padding:10px 16px;border-radius:6px}
.kpi b{display:block;font-size:22px}.missing{color:#a00}.empty{color:#333;font-style:italic}
"""
# column -> header; "{cur}" becomes the currency ("" when the data gives none)
HEADERS = {
    "product_id": "Product", "product_name": "Name", "category": "Category",
    "demand_lead_review": "Demand until next delivery + review (units)",
    "safety_stock": "Safety stock (units)", "order_up_to": "Order-up-to level (units)",
    "on_hand": "On hand (units)", "suggested_order_qty": "Suggested order (units)",
    "order_reason": "Why", "current_price": "Current price{cur}",
    "suggested_price": "Suggested price{cur}", "change_pct": "Change %",
    "elasticity": "Price elasticity", "elasticity_ci_low": "Elasticity CI low",
    "elasticity_ci_high": "Elasticity CI high", "binding_constraint": "Limited by",
    "expected_margin_current": "Weekly margin now{cur}",
    "expected_margin_change": "Weekly margin change{cur}",
    "expected_margin_change_low": "Change, low{cur}",
    "expected_margin_change_high": "Change, high{cur}",
    "segment_label": "Segment", "customers": "Customers", "share": "Share of customers",
    "revenue_share": "Share of revenue", "yearly_revenue": "Revenue per year{cur}",
    "mean_recency_days": "Days since last order", "mean_frequency": "Orders",
    "mean_monetary": "Revenue per customer{cur}",
    "mean_expected_gap_days": "Expected days between orders",
    "from_segment_label": "From segment", "to_segment_label": "To segment",
    "method": "Method", "n_products": "Products", "mase": "MASE", "smape": "sMAPE %",
    "wape": "WAPE", "bias": "Bias", "status": "Forecast status", "count": "Count",
    "model": "Method", "all": "Precision@k, all products",
    "new": "Precision@k, products new to the customer", "n_customers": "Customers evaluated",
    "kind": "Kind", "period": "Period", "actual": "Actual", "expected": "Expected",
    "direction": "Direction", "severity": "Severity", "reason": "Reason",
    "table_name": "Table", "rule": "Rule", "action": "Action", "rows_failed": "Rows failed",
    "rows_checked": "Rows checked", "customer_id": "Customer", "rank": "Rank",
    "source": "Why recommended", "playbook_status": "Status", "detail": "What to do",
    "promo_uplift": "Units uplift of a typical promotion",
    "basket_size": "Revenue per order{cur}", "days_between_orders": "Days between orders",
    "kpi": "KPI", "realised": "Realised", "expected_low": "Expected, low",
    "expected_high": "Expected, high", "verdict": "Against expectation",
    "actions": "Actions recommended then",
}  # fmt: skip
PERCENT = {"share", "revenue_share", "all", "new", "promo_uplift"}
MONEY = {"current_price", "suggested_price", "expected_margin_current", "expected_margin_change",
         "expected_margin_change_low", "expected_margin_change_high", "yearly_revenue",
         "mean_monetary", "basket_size"}  # fmt: skip
INTEGER = {"customers", "n_products", "count", "n_customers", "rows_failed", "rows_checked",
           "mean_recency_days", "mean_expected_gap_days", "rank", "actual", "expected"}  # fmt: skip
WHY = {
    "buy_again": "bought before", "own_history": "bought before",
    "own_history_decay": "bought before", "als": "similar customers bought it",
    "popular": "popular in the segment", "new_product": "new product",
}  # fmt: skip
FORECAST_METHODS = {
    "model": "served forecast", "seasonal_naive": "seasonal naive (baseline)",
    "arima": "ARIMA", "ets": "exponential smoothing (ETS)", "theta": "Theta",
    "croston": "Croston", "tsb": "TSB (intermittent)",
}  # fmt: skip
METHODS = {
    "popular": "popular in segment (baseline)", "own_history": "bought most often (baseline)",
    "own_history_decay": "bought most often, recent first (baseline)",
    "buy_again": "buy-again model", "als": "similar customers (ALS)",
}  # fmt: skip


def _numeric(value: object) -> bool:
    return pd.api.types.is_number(value) and not pd.api.types.is_bool(value)


def _format(column: str, value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    if pd.api.types.is_bool(value):
        return "yes" if value else "no"
    if _numeric(value):
        v = float(value)  # type: ignore[arg-type]
        if column in PERCENT:
            return f"{100 * v:.1f}%"
        if column in MONEY:
            return f"{v:,.2f}"
        if column in INTEGER or float(v).is_integer():
            return f"{v:,.0f}"
        return f"{v:,.2f}"
    if column == "source":
        return html.escape(WHY.get(str(value), str(value)))
    if column == "method":
        return html.escape(FORECAST_METHODS.get(str(value), str(value).replace("_", " ")))
    return html.escape(str(value).replace("_", " ") if column in _CODES else str(value))


_CODES = {"order_reason", "binding_constraint", "kind", "reason", "action", "status",
          "playbook_status", "kpi"}  # fmt: skip


def table(
    df: pd.DataFrame | None,
    missing: str,
    currency: str = "",
    total: int | None = None,
    csv: str | None = None,
    what: str = "rows",
    empty: str = "No rows.",
) -> str:
    """An HTML table with human headers; a caption "Top N of M ..." when it was cut."""
    if df is None:
        return (
            f'<p class="missing">Not available: {html.escape(missing)} has not been produced.</p>'
        )
    if df.empty:
        return f'<p class="empty">{html.escape(empty)}</p>'
    cur = f" ({currency})" if currency else ""
    head = "".join(f"<th>{html.escape(HEADERS.get(c, c).format(cur=cur))}</th>" for c in df.columns)
    rows = []
    for record in df.itertuples(index=False):
        cells = []
        for column, value in zip(df.columns, record, strict=True):
            cls = ' class="num"' if _numeric(value) else ""
            cells.append(f"<td{cls}>{_format(column, value)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    out = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    if total is not None and total > len(df):
        link = f' Full table: <a href="{csv}">{csv}</a>.' if csv else " Query the table for all."
        out += f'<p class="caption">Top {len(df)} of {total:,} {what}.{link}</p>'
    elif csv:
        out += f'<p class="caption">As CSV: <a href="{csv}">{csv}</a>.</p>'
    return out


def _img(path: Path | None, alt: str) -> str:
    if path is None:
        return ""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    src = f"data:image/png;base64,{encoded}"
    return f'<img src="{src}" alt="{html.escape(alt)}" style="max-width:100%">'


def _drop_ids(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if frame is None else frame.drop(columns=["segment_id"], errors="ignore")


def _what(text: str) -> str:
    return f'<p class="what">{html.escape(text)}</p>'


def _kpis(data: ReportData) -> str:
    k = data.kpis
    if "revenue_last_13_weeks" not in k:
        return table(None, "gold/sales_weekly")
    cur = f" {data.currency}" if data.currency else ""
    cards = [("Net revenue, last 13 weeks", f"{k['revenue_last_13_weeks']:,.0f}{cur}")]
    before = k.get("revenue_previous_13_weeks", 0.0)
    if before:
        change = k["revenue_last_13_weeks"] / before - 1
        cards.append(("Change vs the 13 weeks before", f"{100 * change:+.1f}%"))
    cards.append(("Units sold, last 13 weeks", f"{k['units_last_13_weeks']:,.0f}"))
    cards.append(("Products sold, last 13 weeks", f"{k['active_products_13_weeks']:,.0f}"))
    if data.churn is not None and data.segments is not None and not data.segments.empty:
        at_risk = int(data.churn["customers"].sum())
        cards.append(("Customers at risk or lapsed", f"{at_risk:,}"))
    body = "".join(
        f'<div class="kpi">{html.escape(a)}<b>{html.escape(b)}</b></div>' for a, b in cards
    )
    return f'<div class="kpis">{body}</div>'


def _recommendations(data: ReportData) -> str:
    parts = []
    if data.rec_metrics is not None and not data.rec_metrics.empty and "all" in data.rec_metrics:
        frame = data.rec_metrics.copy()
        k = int(frame["k"].iloc[0]) if "k" in frame else 10
        frame["model"] = [
            METHODS.get(m, m) + (" (served)" if served else "")
            for m, served in zip(frame["model"], frame["served"], strict=True)
        ]
        shown = frame[[c for c in ("model", "all", "new", "n_customers") if c in frame]]
        parts.append(
            _what(
                f"Each method's top-{k} lists, built as they would have been served some weeks "
                "ago, against what the customers then bought (holdout). Precision: the share "
                "of listed products bought. The served method was chosen on an earlier window "
                "and never scores below a baseline there."
            )
        )
        rendered = table(shown, "gold/recommendation_metrics")
        parts.append(rendered.replace("Precision@k", f"Precision@{k}"))
    else:
        parts.append(table(data.rec_metrics, "gold/recommendation_metrics"))
    parts.append("<h3>Example lists</h3>")
    if data.examples is None or data.examples.empty:
        parts.append(table(data.examples, "gold/recommendations", empty="No customer has a list."))
    else:
        ex = data.examples.copy()
        ex.insert(list(ex.columns).index("product_id") + 1, "product_name",
                  ex["product_id"].map(data.names).fillna(""))  # fmt: skip
        parts.append(
            _what(
                f"The first {int(ex['rank'].max())} products on the lists of a few "
                "customers, each the most valuable of a model segment, and why each product "
                "is there."
            )
        )
        parts.append(table(ex, "gold/recommendations"))
    return "".join(parts)


def _strategy(data: ReportData, currency: str) -> str:
    since = data.checked.get("kpis_since")
    kpis_empty = (
        "No earlier playbook to check: KPIs show from the second refresh on."
        if not since
        else "No KPI was tracked for these segments."
    )
    check = (
        f"<h3>Against the playbook of {since}</h3>"
        if since
        else "<h3>Against the previous playbook</h3>"
    )
    return "".join(
        [
            _what(
                "What each customer segment answers to, and what to do about it: actions "
                "recommended where the segment's own numbers support them, and why not "
                "elsewhere. Act on the recommended rows; check the KPIs below at the next "
                "refresh."
            ),
            table(data.playbook, "gold/segment_playbook", currency,
                  csv="segment_playbook.csv" if "segment_playbook" in data.full else None,
                  empty="No segment to act on."),
            "<h3>How each segment responds</h3>",
            _what(
                "Price elasticity: % change in units for a 1 % price change (below -1: "
                "discounts pay in revenue). Uplift: extra units when a product is on a typical "
                "promotion. Blank: not enough evidence."
            ),
            table(data.response, "gold/segment_response", currency,
                  empty="No segment has enough purchases for an estimate."),
            check,
            table(data.segment_kpis, "gold/segment_kpis", currency, empty=kpis_empty),
        ]
    )  # fmt: skip


def _anomaly_note(data: ReportData, level: float) -> str:
    products = data.checked.get("products")
    since = data.checked.get("forecast_since")
    checks = [f"{products:,} products checked for sales dropping to zero" if products else
              "sales checked for drops to zero"]  # fmt: skip
    if since:
        checks.append(
            f"last period's sales against the {level:.0%} interval of the {since} forecast"
        )
    else:
        checks.append(
            "actuals are compared with a forecast's interval from the second refresh on "
            "(no earlier forecast yet)"
        )
    return "No anomalies: " + "; ".join(checks) + "."


def render(data: ReportData, images: dict[str, Path | None], level: float = 0.8) -> str:
    cur = data.currency
    n = data.totals

    def csv_for(name: str) -> str | None:
        return f"{name}.csv" if name in data.full else None

    warn = ""
    if " / " in cur:
        warn = (
            f'<p class="missing">Several currencies in the data ({html.escape(cur)}): amounts '
            "are summed as they are.</p>"
        )
    names_for = data.names
    history_alt = "Weekly units and forecast: " + ", ".join(
        f"{p} {names_for.get(p, '')}".strip()
        for p in dict.fromkeys(
            data.top_history["product_id"] if data.top_history is not None else []
        )
    )
    migration_empty = (
        "No customer changed segment since the previous as_of."
        if data.checked.get("migration_since")
        else "No earlier as_of to compare with: migration shows from the second refresh on."
    )
    body = [
        f"<h1>Sales report, as of {data.as_of:%d %B %Y}</h1>", warn,
        f"<h2>{SECTIONS[0]}</h2>",
        _what("Where sales stand: the last 13 complete weeks against the 13 before them."),
        _kpis(data), _img(images["weekly_revenue"], "Net revenue per week"),
        f"<h2>{SECTIONS[1]}</h2>",
        _what("The best-selling products of the last 13 weeks: weekly units sold and the "
              "forecast with its interval. Plan stock and promotions on the forecast line; "
              "the band shows how far actual sales may fall from it."),
        _img(images["history_and_forecast"], history_alt) or table(None, "gold/sales_weekly"),
        f"<h2>{SECTIONS[2]}</h2>",
        _what("How accurate the forecasts were when replayed on past weeks (backtest). MASE "
              "below 1 beats repeating the same week last season; trust the forecast less "
              "where it is above 1."),
        _img(images["forecast_accuracy"], "Backtest MASE by method"),
        table(data.forecast_overall, "gold/forecast_metrics"),
        table(data.forecast_status, "gold/forecast_status"),
        f"<h2>{SECTIONS[3]}</h2>",
        _what("Customers grouped by lifecycle (new, at risk, lapsed, one-time buyers) and, for "
              "active repeat customers, by value and buying pace. Target offers by segment."),
        _img(images["segments"], "Share of customers and revenue per segment"),
        table(_drop_ids(data.segments), "gold/segment_profiles", cur, None, csv_for("segments")),
        "<h3>Moves between segments since the previous as_of</h3>",
        table(data.migration, "gold/segment_migration", total=n.get("segment_moves"),
              csv=csv_for("segment_moves"), what="moves between segments", empty=migration_empty),
        f"<h2>{SECTIONS[4]}</h2>",
        _what("Customers who have gone quiet for several of their expected gaps between "
              "orders: at risk first, then lapsed. Revenue per year is what they brought while "
              "buying: the revenue at stake. Contact at-risk customers first; win back lapsed "
              "ones with an offer."),
        table(_drop_ids(data.churn), "gold/segment_profiles", cur,
              empty="No customer is at risk or lapsed."),
        f"<h2>{SECTIONS[5]}</h2>", _strategy(data, cur),
        f"<h2>{SECTIONS[6]}</h2>", _img(images["recommendations"], "Precision by method"),
        _recommendations(data),
        f"<h2>{SECTIONS[7]}</h2>",
        _what("What to order so that stock lasts until the next delivery and review at the "
              "target service level. Place the suggested orders; products without an on-hand "
              "figure need a stock count first."),
        table(data.replenishment, "gold/replenishment_plan", cur, n.get("replenishment_plan"),
              csv_for("replenishment_plan"), "products, largest suggested order first"),
        f"<h2>{SECTIONS[8]}</h2>",
        _what("Price changes the estimated price elasticity supports, within the allowed "
              "range, largest expected weekly margin gain first. Review and apply them; the "
              "low/high columns give the margin change's range."),
        table(data.prices, "gold/price_recommendations", cur, n.get("price_suggestions"),
              csv_for("price_suggestions"), "price changes"),
        f"<h2>{SECTIONS[9]}</h2>",
        _what("Products whose sales fell outside the forecast's interval or dropped to zero, "
              "and segments whose share moved. Check stock-outs, listings and data first."),
        table(data.anomalies, "gold/sales_anomalies", cur, n.get("anomalies"), csv_for("anomalies"),
              "anomalies", _anomaly_note(data, level)),
        f"<h2>{SECTIONS[10]}</h2>",
        _what("Order lines set aside by the quality gates, by reason, and the checks run on "
              "each table. Fix the source where a reason is large."),
        "<h3>Quarantined lines by reason</h3>",
        table(data.quarantine, "quarantine/orders_rejected", empty="No line was quarantined."),
        "<h3>Checks</h3>", table(data.quality, "ops/quality_results"),
    ]  # fmt: skip
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Sales report {data.as_of.isoformat()}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )


def build_report(
    spark: SparkSession, warehouse: Warehouse, as_of: date, out: Path, level: float = 0.8
) -> Path:
    """Writes `out/report.html` (charts embedded) and the full tables as CSV beside it; returns
    the HTML path. `level` is the interval the monitor compares actuals with."""
    out.mkdir(parents=True, exist_ok=True)
    data = collect(spark, warehouse, as_of)
    images = {chart.__name__: chart(data, out) for chart in charts.ALL}
    for name, frame in data.full.items():
        frame.to_csv(out / f"{name}.csv", index=False)
    path = out / "report.html"
    path.write_text(render(data, images, level))
    if data.missing:
        log.warning("report sections without data: %s", ", ".join(sorted(set(data.missing))))
    log.info("report written to %s", path)
    return path


__all__ = ["SECTIONS", "TOP_ROWS", "build_report", "render", "table"]
