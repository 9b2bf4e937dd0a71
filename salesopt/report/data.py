"""Pandas frames for the report, read from the warehouse for one as_of.

The sections get aggregates and top-N rows. A table the report cuts is also collected whole
for its CSV (one row per product or per anomaly: up to FULL_ROWS rows, beyond which the section
names the Delta table instead). A table that does not exist yet gives None, and its section
says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from salesopt.io.tables import Warehouse, agg_row
from salesopt.segment.labels import CHURN_IDS

TOP_PRODUCTS = 4
TOP_ROWS = 15
HISTORY_WEEKS = 52
EXAMPLE_CUSTOMERS = 3
EXAMPLE_RANKS = 5
FULL_ROWS = 1_000_000  # a full table beyond this is not written as CSV (query the Delta table)


@dataclass
class ReportData:
    as_of: date
    kpis: dict[str, float] = field(default_factory=dict)
    weekly_total: pd.DataFrame | None = None
    top_history: pd.DataFrame | None = None
    top_forecast: pd.DataFrame | None = None
    forecast_overall: pd.DataFrame | None = None
    forecast_status: pd.DataFrame | None = None
    segments: pd.DataFrame | None = None
    migration: pd.DataFrame | None = None
    rec_metrics: pd.DataFrame | None = None
    replenishment: pd.DataFrame | None = None
    prices: pd.DataFrame | None = None
    anomalies: pd.DataFrame | None = None
    quarantine: pd.DataFrame | None = None
    quality: pd.DataFrame | None = None
    churn: pd.DataFrame | None = None
    examples: pd.DataFrame | None = None
    playbook: pd.DataFrame | None = None
    response: pd.DataFrame | None = None
    segment_kpis: pd.DataFrame | None = None
    currency: str = ""
    names: dict[str, str] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)  # rows before a table was cut
    full: dict[str, pd.DataFrame] = field(default_factory=dict)  # written as CSV beside the report
    checked: dict[str, object] = field(default_factory=dict)  # what an empty section checked
    missing: list[str] = field(default_factory=list)


def _slice(
    spark: SparkSession, wh: Warehouse, layer: str, name: str, as_of: date, data: ReportData
) -> DataFrame | None:
    if not wh.exists(spark, layer, name):
        data.missing.append(f"{layer}/{name}")
        return None
    return wh.read_as_of(spark, layer, name, as_of)


def _sales(spark: SparkSession, wh: Warehouse, data: ReportData) -> None:
    if not wh.exists(spark, "gold", "sales_weekly"):
        data.missing.append("gold/sales_weekly")
        return
    start = data.as_of - timedelta(weeks=HISTORY_WEEKS)
    complete = F.date_add(F.col("week_start"), 6) <= F.lit(data.as_of)  # no partial last week
    weekly = wh.read(spark, "gold", "sales_weekly").where(
        (F.col("week_start") > F.lit(start)) & complete
    )
    data.weekly_total = (
        weekly.groupBy("week_start")
        .agg(F.sum("units").alias("units"), F.sum("revenue").alias("revenue"))
        .orderBy("week_start")
        .toPandas()
    )
    recent = data.as_of - timedelta(weeks=13)
    top = (
        weekly.where(F.col("week_start") > F.lit(recent))
        .groupBy("product_id")
        .agg(F.sum("units").alias("units"))
        .orderBy(F.col("units").desc(), "product_id")
        .limit(TOP_PRODUCTS)
    )
    top_ids = [r["product_id"] for r in top.collect()]
    data.top_history = (
        weekly.where(F.col("product_id").isin(top_ids))
        .select("product_id", "week_start", "units")
        .orderBy("product_id", "week_start")
        .toPandas()
    )
    wt = data.weekly_total
    last13 = wt[wt["week_start"] > recent] if len(wt) else wt
    prev13 = wt[(wt["week_start"] <= recent) & (wt["week_start"] > recent - timedelta(weeks=13))]
    data.kpis.update(
        {
            "revenue_last_13_weeks": float(last13["revenue"].sum()),
            "units_last_13_weeks": float(last13["units"].sum()),
            "revenue_previous_13_weeks": float(prev13["revenue"].sum()),
            "active_products_13_weeks": float(
                weekly.where(F.col("week_start") > F.lit(recent))
                .select("product_id")
                .distinct()
                .count()
            ),
        }
    )
    forecasts = _slice(spark, wh, "gold", "forecasts", data.as_of, data)
    if forecasts is not None:
        widest = agg_row(forecasts.agg(F.max("level")))[0]
        data.top_forecast = (
            forecasts.where(F.col("product_id").isin(top_ids) & (F.col("level") == F.lit(widest)))
            .select("product_id", "ds", "yhat", "yhat_lower", "yhat_upper", "level")
            .orderBy("product_id", "ds")
            .toPandas()
        )


def _top(
    df: DataFrame | None,
    order: list,
    columns: list[str],
    data: ReportData,
    name: str,
    names: DataFrame | None = None,
) -> pd.DataFrame | None:
    """The first TOP_ROWS rows in `order`; the whole table (up to FULL_ROWS rows) goes to
    `data.full[name]` for its CSV and its row count to `data.totals[name]`. With `names`
    (product_id, product_name) the product name follows the id. Columns a table written by an
    older version lacks are left out."""
    if df is None:
        return None
    present = [c for c in columns if c in df.columns]
    if names is not None and "product_id" in present:
        df = df.join(names, "product_id", "left")
        present.insert(present.index("product_id") + 1, "product_name")
    ordered = df.orderBy(*order).select(*present)
    data.totals[name] = ordered.count()
    if data.totals[name] <= FULL_ROWS:
        data.full[name] = ordered.toPandas()
        return data.full[name].head(TOP_ROWS).copy()
    return ordered.limit(TOP_ROWS).toPandas()


def whole_units(frame: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame | None:
    """Unit quantities shown as whole units: a level to stock up to or a demand is rounded up
    (an order cannot bring half a unit)."""
    if frame is None:
        return None
    out = frame.copy()
    for c in columns:
        if c in out.columns:
            out[c] = np.ceil(out[c].astype("float64") - 1e-9).astype("Int64")
    return out


def _currency(spark: SparkSession, wh: Warehouse, data: ReportData) -> None:
    """The order currency of the last 13 weeks' lines ("" when the data gives none; several
    are joined with " / " and the report warns)."""
    if not wh.exists(spark, "silver", "order_lines"):
        return
    lines = wh.read(spark, "silver", "order_lines")
    if "currency" not in lines.columns:
        return
    recent = lines.where(F.col("order_date") > F.lit(data.as_of - timedelta(weeks=13)))
    found = [r[0] for r in recent.select("currency").distinct().collect() if r[0]]
    data.currency = " / ".join(sorted(found))


def _product_names(spark: SparkSession, wh: Warehouse) -> DataFrame | None:
    if not wh.exists(spark, "silver", "products"):
        return None
    return wh.read(spark, "silver", "products").select("product_id", "product_name")


def _names(spark: SparkSession, wh: Warehouse, data: ReportData, ids: set[str]) -> None:
    if not ids or not wh.exists(spark, "silver", "products"):
        return
    rows = (
        wh.read(spark, "silver", "products")
        .where(F.col("product_id").isin(sorted(ids)))
        .select("product_id", "product_name")
        .collect()
    )
    data.names.update({r["product_id"]: r["product_name"] for r in rows if r["product_name"]})


def _segments(spark: SparkSession, wh: Warehouse, data: ReportData) -> None:
    profiles = _slice(spark, wh, "gold", "segment_profiles", data.as_of, data)
    if profiles is None:
        return
    columns = ["segment_id", "segment_label", "customers", "share", "revenue_share",
               "yearly_revenue", "mean_recency_days", "mean_frequency", "mean_monetary",
               "mean_expected_gap_days"]  # fmt: skip
    frame = profiles.select(*[c for c in columns if c in profiles.columns]).toPandas()
    data.segments = frame.sort_values("revenue_share", ascending=False).reset_index(drop=True)
    data.full["segments"] = data.segments
    churn = frame[frame["segment_id"].isin(CHURN_IDS)]
    data.churn = churn.sort_values("segment_id").reset_index(drop=True)
    migration = _slice(spark, wh, "gold", "segment_migration", data.as_of, data)
    if migration is not None:
        moved = (
            migration.where(
                F.col("from_segment_id").isNotNull() & F.col("to_segment_id").isNotNull()
            )
            .where(F.col("from_segment_id") != F.col("to_segment_id"))
            .orderBy(F.col("customers").desc(), "from_segment_id", "to_segment_id")
            .select("from_segment_label", "to_segment_label", "customers")
            .toPandas()
        )
        data.totals["segment_moves"] = len(moved)
        data.full["segment_moves"] = moved
        data.migration = moved.head(TOP_ROWS).copy()
        row = migration.agg(F.max("previous_as_of")).first()
        data.checked["migration_since"] = row[0] if row else None


# playbook statuses in the order a manager reads them
PLAYBOOK_ORDER = {"recommended": 0, "not_recommended": 1, "insufficient_evidence": 2}
RESPONSE_SHOWN = {
    "price_elasticity": "elasticity", "promo_uplift": "promo_uplift",
    "basket_size": "basket_size", "days_between_orders": "days_between_orders",
}  # fmt: skip


def _strategy(spark: SparkSession, wh: Warehouse, data: ReportData) -> None:
    """The playbook's actions (monitored KPIs aside), the response estimates that are `ok` one
    row per segment, and the KPIs checked against the previous playbook."""
    book = _slice(spark, wh, "gold", "segment_playbook", data.as_of, data)
    if book is not None:
        frame = book.where(F.col("action") != "monitor").toPandas()
        frame["_order"] = frame["status"].map(PLAYBOOK_ORDER).fillna(3)
        frame = frame.sort_values(["_order", "segment_id", "action"]).reset_index(drop=True)
        data.full["segment_playbook"] = frame.drop(columns=["_order", "as_of", "run_id"])
        data.playbook = frame[["segment_label", "action", "status", "detail", "reason"]].rename(
            columns={"status": "playbook_status"}
        )
    response = _slice(spark, wh, "gold", "segment_response", data.as_of, data)
    if response is not None:
        ok = (
            response.where(F.col("status") == "ok")
            .where(F.col("metric").isin(list(RESPONSE_SHOWN)))
            .select("segment_id", "segment_label", "metric", "estimate")
            .toPandas()
        )
        if not ok.empty:
            wide = ok.pivot_table(
                index=["segment_id", "segment_label"], columns="metric", values="estimate"
            ).rename(columns=RESPONSE_SHOWN)
            shown = [c for c in RESPONSE_SHOWN.values() if c in wide.columns]
            data.response = wide[shown].reset_index().drop(columns=["segment_id"])
        else:
            data.response = pd.DataFrame()
    kpis = _slice(spark, wh, "gold", "segment_kpis", data.as_of, data)
    if kpis is not None:
        frame = kpis.orderBy("segment_id", "kpi").toPandas()
        data.checked["kpis_since"] = frame["since_as_of"].iloc[0] if len(frame) else None
        data.segment_kpis = frame[
            ["segment_label", "kpi", "realised", "expected_low", "expected_high", "verdict",
             "actions"]
        ]  # fmt: skip


def _recommendations(spark: SparkSession, wh: Warehouse, data: ReportData) -> None:
    rec = _slice(spark, wh, "gold", "recommendation_metrics", data.as_of, data)
    if rec is not None:
        label = F.when(
            F.col("model") == "blend", F.format_string("blend %.2f", F.col("blend_weight"))
        ).otherwise(F.col("model"))
        holdout = rec.where((F.col("split") == "holdout") & (F.col("metric") == "precision_at_k"))
        frame = holdout.select(
            label.alias("model"), "served", "candidates", "k", "value", "n_customers"
        ).toPandas()
        if not frame.empty:
            wide = frame.pivot_table(
                index=["model", "served"], columns="candidates", values="value", aggfunc="first"
            ).reset_index()
            counts = frame[frame["candidates"] == "all"].groupby("model")["n_customers"].max()
            wide["n_customers"] = wide["model"].map(counts)
            wide["k"] = int(frame["k"].max())
            data.rec_metrics = wide.sort_values(
                ["served", "all"], ascending=[False, False]
            ).reset_index(drop=True)
        else:
            data.rec_metrics = frame
    lists = _slice(spark, wh, "gold", "recommendations", data.as_of, data)
    segments = _slice(spark, wh, "gold", "customer_segments", data.as_of, data)
    if lists is None or segments is None:
        return
    # the largest model segments' most valuable listed customers: one example per segment
    listed = lists.select("customer_id").distinct()
    features = _slice(spark, wh, "gold", "customer_features", data.as_of, data)
    if features is None:
        return
    ranked = (
        segments.where(F.col("segment_id") >= 0)
        .join(listed, "customer_id")
        .join(features.select("customer_id", "monetary"), "customer_id")
        .withColumn(
            "pick",
            F.row_number().over(
                Window.partitionBy("segment_label").orderBy(F.desc("monetary"), "customer_id")
            ),
        )
        .where(F.col("pick") == 1)
        .orderBy(F.desc("monetary"), "customer_id")
        .limit(EXAMPLE_CUSTOMERS)
        .select("customer_id", "segment_label")
    )
    data.examples = (
        lists.where(F.col("rank") <= EXAMPLE_RANKS)
        .join(ranked, "customer_id")
        .select("customer_id", "segment_label", "rank", "product_id", "source")
        .orderBy("customer_id", "rank")
        .toPandas()
    )


def _anomalies(spark: SparkSession, wh: Warehouse, data: ReportData) -> None:
    anomalies = _slice(spark, wh, "gold", "sales_anomalies", data.as_of, data)
    data.anomalies = _top(
        anomalies,
        [F.col("severity").asc(), F.col("z").desc_nulls_last(), "product_id"],
        ["kind", "product_id", "segment_label", "period", "actual", "expected", "direction",
         "severity"],
        data,
        "anomalies",
        _product_names(spark, wh),
    )  # fmt: skip
    if wh.exists(spark, "gold", "forecast_status"):
        status = wh.read_as_of(spark, "gold", "forecast_status", data.as_of)
        data.checked["products"] = status.count()
    if wh.exists(spark, "gold", "forecasts"):
        row = (
            wh.read(spark, "gold", "forecasts")
            .where(F.col("as_of") < F.lit(data.as_of))
            .agg(F.max("as_of"))
            .first()
        )
        data.checked["forecast_since"] = row[0] if row else None


def collect(spark: SparkSession, wh: Warehouse, as_of: date) -> ReportData:
    """Everything the report shows, as small pandas frames."""
    data = ReportData(as_of=as_of)
    _sales(spark, wh, data)
    _currency(spark, wh, data)
    metrics = _slice(spark, wh, "gold", "forecast_metrics", as_of, data)
    if metrics is not None:
        data.forecast_overall = (
            metrics.where("scope = 'overall' AND horizon = 'all'")
            .select("method", "n_products", "mase", "smape", "wape", "bias")
            .orderBy("mase")
            .toPandas()
        )
    status = _slice(spark, wh, "gold", "forecast_status", as_of, data)
    if status is not None:
        data.forecast_status = status.groupBy("status").count().orderBy("status").toPandas()
    _segments(spark, wh, data)
    _strategy(spark, wh, data)
    _recommendations(spark, wh, data)
    plan = _slice(spark, wh, "gold", "replenishment_plan", as_of, data)
    data.replenishment = whole_units(
        _top(
            plan,
            [F.col("suggested_order_qty").desc_nulls_last(), F.col("order_up_to").desc(),
             "product_id"],
            ["product_id", "category", "demand_lead_review", "safety_stock", "order_up_to",
             "on_hand", "suggested_order_qty", "order_reason"],
            data,
            "replenishment_plan",
            _product_names(spark, wh),
        ),
        ["demand_lead_review", "safety_stock", "order_up_to"],
    )  # fmt: skip
    whole = whole_units(
        data.full.get("replenishment_plan"), ["demand_lead_review", "safety_stock", "order_up_to"]
    )
    if whole is not None:
        data.full["replenishment_plan"] = whole
    prices = _slice(spark, wh, "gold", "price_recommendations", as_of, data)
    if prices is not None:
        prices = prices.where("reason = 'optimised'")
    data.prices = _top(
        prices,
        [
            (F.col("expected_margin_suggested") - F.col("expected_margin_current")).desc(),
            "product_id",
        ],
        ["product_id", "current_price", "suggested_price", "change_pct", "elasticity",
         "elasticity_ci_low", "elasticity_ci_high", "binding_constraint",
         "expected_margin_current", "expected_margin_change", "expected_margin_change_low",
         "expected_margin_change_high"],
        data,
        "price_suggestions",
        _product_names(spark, wh),
    )  # fmt: skip
    _anomalies(spark, wh, data)
    if wh.exists(spark, "quarantine", "orders_rejected"):
        data.quarantine = (
            wh.read(spark, "quarantine", "orders_rejected")
            .groupBy("reason")
            .count()
            .orderBy(F.col("count").desc(), "reason")
            .toPandas()
        )
    if wh.exists(spark, "ops", "quality_results"):
        data.quality = (
            wh.read(spark, "ops", "quality_results")
            .where(F.col("as_of") == F.lit(as_of))
            .groupBy("table_name", "rule", "action")
            .agg(
                F.max_by("rows_failed", "rows_checked").alias("rows_failed"),
                F.max("rows_checked").alias("rows_checked"),
            )
            .orderBy("table_name", "rule")
            .toPandas()
        )
    shown: set[str] = set()
    for frame in (data.top_history, data.examples):
        if frame is not None and "product_id" in frame.columns:
            shown |= {p for p in frame["product_id"].dropna()}
    _names(spark, wh, data, shown)
    return data
