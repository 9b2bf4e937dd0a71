"""Small, bounded pandas frames for the report, read from the warehouse for one as_of.

Only aggregates and top-N rows reach the driver (at most a few thousand rows whatever the data
size). A table that does not exist yet gives None, and its section says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt.io.tables import Warehouse, agg_row

TOP_PRODUCTS = 4
TOP_ROWS = 15
HISTORY_WEEKS = 52


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


def _top(df: DataFrame | None, order: list, columns: list[str]) -> pd.DataFrame | None:
    """The first TOP_ROWS rows in `order`; columns a table written by an older version lacks
    are left out."""
    if df is None:
        return None
    present = [c for c in columns if c in df.columns]
    return df.orderBy(*order).select(*present).limit(TOP_ROWS).toPandas()


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


def collect(spark: SparkSession, wh: Warehouse, as_of: date) -> ReportData:
    """Everything the report shows, as small pandas frames."""
    data = ReportData(as_of=as_of)
    _sales(spark, wh, data)
    metrics = _slice(spark, wh, "gold", "forecast_metrics", as_of, data)
    if metrics is not None:
        data.forecast_overall = (
            metrics.where("scope = 'overall' AND horizon = 'all'")
            .select("method", "n_products", "mase", "smape", "wape", "bias")
            .toPandas()
        )
    status = _slice(spark, wh, "gold", "forecast_status", as_of, data)
    if status is not None:
        data.forecast_status = status.groupBy("status").count().orderBy("status").toPandas()
    profiles = _slice(spark, wh, "gold", "segment_profiles", as_of, data)
    if profiles is not None:
        data.segments = profiles.orderBy("segment_id").select(
            "segment_id", "segment_label", "customers", "share", "revenue_share",
            "mean_recency_days", "mean_frequency", "mean_monetary", "mean_tenure_days",
        ).toPandas()  # fmt: skip
    migration = _slice(spark, wh, "gold", "segment_migration", as_of, data)
    if migration is not None:
        data.migration = (
            migration.where(
                F.col("from_segment_label").isNotNull() & F.col("to_segment_label").isNotNull()
            )
            .select("from_segment_label", "to_segment_label", "customers")
            .toPandas()
        )
    rec = _slice(spark, wh, "gold", "recommendation_metrics", as_of, data)
    if rec is not None:
        label = F.when(
            F.col("model") == "blend", F.format_string("blend %.2f", F.col("blend_weight"))
        ).otherwise(F.col("model"))
        served = F.when(F.col("served"), F.concat(label, F.lit(" (served)"))).otherwise(label)
        data.rec_metrics = (
            rec.where(F.col("split") == "holdout")
            .select(served.alias("model"), "candidates", "metric", "k", "value", "n_customers")
            .toPandas()
        )
    plan = _slice(spark, wh, "gold", "replenishment_plan", as_of, data)
    data.replenishment = whole_units(
        _top(
            plan,
            [F.col("order_up_to").desc(), "product_id"],
            ["product_id", "category", "demand_lead_review", "safety_stock", "reorder_point",
             "order_up_to", "on_hand", "suggested_order_qty", "order_reason"],
        ),
        ["demand_lead_review", "safety_stock", "reorder_point", "order_up_to"],
    )  # fmt: skip
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
    )  # fmt: skip
    anomalies = _slice(spark, wh, "gold", "sales_anomalies", as_of, data)
    data.anomalies = _top(
        anomalies,
        [F.col("severity").asc(), F.col("z").desc_nulls_last(), "product_id"],
        [
            "kind",
            "product_id",
            "segment_label",
            "period",
            "actual",
            "expected",
            "direction",
            "severity",
        ],
    )
    if wh.exists(spark, "quarantine", "orders_rejected"):
        data.quarantine = (
            wh.read(spark, "quarantine", "orders_rejected")
            .groupBy("reason")
            .count()
            .orderBy("reason")
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
    return data
