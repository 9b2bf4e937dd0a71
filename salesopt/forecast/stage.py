"""Forecasting stage: reads gold sales, fits every product in parallel, writes four gold tables.

    gold/sales_weekly (or sales_daily) -> gold/forecasts, gold/forecast_status,
                                          gold/forecast_metrics, gold/forecast_calibration

The per-product function (salesopt.forecast.model) runs through `groupBy(...).applyInPandas`.
The fan-out is made explicit: products are dealt round-robin by series length into
`partitions` buckets and each bucket is sent to its own partition; adaptive execution may not
coalesce that stage. The run fails (after writing gold/forecast_status) when the share of
`failed` products exceeds `forecast.max_failure_share`.
"""

from __future__ import annotations

import logging
import os
import re
import time
from datetime import date
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt.config import ForecastSettings
from salesopt.context import StageContext, StageResult
from salesopt.errors import InputError, StageFailed
from salesopt.forecast import metrics, prepare
from salesopt.forecast.model import (
    OUTPUT_SCHEMA,
    ForecastSpec,
    forecast_product,
    horizon_buckets,
    limit_blas_threads,
)

log = logging.getLogger(__name__)

STAGE_SCHEMA = OUTPUT_SCHEMA + ", task_partition int"
COALESCE_CONF = "spark.sql.adaptive.coalescePartitions.enabled"


def _in_worker(series: pd.DataFrame, spec: ForecastSpec, origin: date) -> pd.DataFrame:
    """The grouped-map function: one BLAS thread, the pure function, and the task's partition."""
    from pyspark import TaskContext

    limit_blas_threads()
    out = forecast_product(series.drop(columns=["key"]), spec, origin)
    context = TaskContext.get()
    out["task_partition"] = context.partitionId() if context is not None else -1
    return out


def fanout_partitions(spark: SparkSession, settings: ForecastSettings) -> int:
    """`forecast.partitions`, else 4 x the default parallelism (from conf or a local master)."""
    if settings.partitions:
        return settings.partitions
    parallelism = spark.conf.get("spark.default.parallelism", None)
    if parallelism:
        return 4 * int(parallelism)
    master = spark.conf.get("spark.master", "") or ""
    local = re.fullmatch(r"local\[(\d+|\*)(,\d+)?\]", master)
    if local:
        cores = (os.cpu_count() or 1) if local.group(1) == "*" else int(local.group(1))
        return fanout_partitions_for_cores(cores)
    return int(spark.conf.get("spark.sql.shuffle.partitions", "200") or 200)


def fanout_partitions_for_cores(cores: int) -> int:
    """Four tasks per core: short and long tasks even out without idle cores at the end."""
    return 4 * cores


def forecast_all(
    spark: SparkSession, sales: DataFrame, settings: ForecastSettings, as_of: date
) -> DataFrame:
    """Runs the per-product function on every product. Grain: rows of OUTPUT_SCHEMA kinds."""
    origin = prepare.origin_for(as_of, settings.frequency)
    units = prepare.period_units(sales, settings.frequency)
    series = prepare.complete_series(units, origin, settings.frequency, settings.history_periods)
    n = fanout_partitions(spark, settings)
    keyed = prepare.with_fanout_key(series, prepare.bucket_keys(spark, n), n).repartition(n, "key")
    spec = ForecastSpec.from_settings(settings)

    def per_product(pdf: pd.DataFrame) -> pd.DataFrame:  # a plain function: no type-hint warning
        return _in_worker(pdf, spec=spec, origin=origin)

    return keyed.groupBy("key", "product_id").applyInPandas(per_product, STAGE_SCHEMA)


def check_failure_share(failed: int, total: int, max_share: float) -> None:
    """Raises StageFailed when no product was forecast or too many failed."""
    if total == 0:
        raise StageFailed("no product to forecast: the sales table has no rows up to as_of")
    if failed > max_share * total:
        raise StageFailed(
            f"forecast failed for {failed} of {total} products, above "
            f"forecast.max_failure_share={max_share}; see gold/forecast_status"
        )


def _read_sales(ctx: StageContext) -> DataFrame:
    freq = ctx.settings.forecast.frequency
    name, date_col = prepare.SOURCE.get(freq, prepare.SOURCE["daily"])
    if not ctx.warehouse.exists(ctx.spark, "gold", name):
        raise InputError(f"gold/{name} does not exist: run the features stage first")
    sales = ctx.warehouse.read(ctx.spark, "gold", name)
    return sales.where(F.col(date_col) <= F.lit(ctx.as_of))


def _stamp(df: DataFrame, ctx: StageContext) -> DataFrame:
    return df.withColumn("as_of", F.lit(ctx.as_of)).withColumn("run_id", F.lit(ctx.run_id))


def calibration_factors(scores: DataFrame, levels: tuple[float, ...], min_points: int) -> DataFrame:
    """Grain: (model, level, horizon). The `level` quantile of the backtest scores.

    `applied` when the group has at least `min_points` scores and a positive, finite factor;
    otherwise the factor used is 1 (intervals as the model gives them).
    """
    parts = []
    for lv in levels:
        rows = scores.where(F.col("level") == lv)
        parts.append(
            rows.groupBy("model", "level", "horizon").agg(
                F.count("*").alias("n_points"),
                F.avg((F.col("score") <= 1.0).cast("double")).alias("raw_coverage"),
                F.percentile_approx("score", lv, 10_000).alias("quantile"),
            )
        )
    factors = parts[0]
    for part in parts[1:]:
        factors = factors.unionByName(part)
    finite = (F.col("quantile") > 0) & (F.col("quantile") < F.lit(float("inf")))
    applied = (F.col("n_points") >= min_points) & finite
    return factors.select(
        "model", "level", "horizon", "n_points", "raw_coverage",
        F.when(applied, F.col("quantile")).otherwise(F.lit(1.0)).alias("factor"),
        applied.alias("applied"),
    )  # fmt: skip


def calibrated(forecasts: DataFrame, factors: DataFrame, horizon_of_step: DataFrame) -> DataFrame:
    """Forecast rows with each log1p half-width times its group's factor (1 without one)."""
    joined = forecasts.join(horizon_of_step, on="step", how="left").join(
        factors.select("model", "level", "horizon", "factor"),
        on=["model", "level", "horizon"],
        how="left",
    )
    c = F.coalesce(F.col("factor"), F.lit(1.0))
    p = F.log1p("yhat")
    lower = F.greatest(F.expm1(p - c * (p - F.log1p("yhat_lower"))), F.lit(0.0))
    upper = F.expm1(p + c * (F.log1p("yhat_upper") - p))
    return joined.select(
        "product_id", "ds", "step", "level", "yhat",
        F.least(lower, F.col("yhat")).alias("yhat_lower"),
        F.greatest(upper, F.col("yhat")).alias("yhat_upper"),
        "model",
    )  # fmt: skip


def split_tables(out: DataFrame, settings: ForecastSettings) -> dict[str, DataFrame]:
    """The four gold tables (without as_of/run_id) from the forecaster's rows."""
    spark = out.sparkSession
    raw = out.where(F.col("kind") == "forecast").select(
        "product_id", "ds", "step", "level", "yhat", "yhat_lower", "yhat_upper", "model"
    )
    levels = tuple(settings.interval_levels)
    scores = out.where(F.col("kind") == "score")
    # a few rows (models x levels x buckets): computed once, used by both tables below
    estimated = calibration_factors(scores, levels, settings.calibration_min_points)
    factors = spark.createDataFrame(estimated.collect(), estimated.schema)
    if settings.calibrate:
        buckets = horizon_buckets(settings.horizon)[1:]
        horizon_of_step = spark.createDataFrame(
            [(step, label) for label, first, last in buckets for step in range(first, last + 1)],
            "step int, horizon string",
        )
        forecasts = calibrated(raw, factors, horizon_of_step)
        scored = scores.join(
            factors.select("model", "level", "horizon", "factor"),
            on=["model", "level", "horizon"],
        )
        coverage = scored.groupBy("model", "level", "horizon").agg(
            F.avg((F.col("score") <= F.col("factor")).cast("double")).alias("calibrated_coverage")
        )
        calibration_table = factors.join(coverage, on=["model", "level", "horizon"], how="left")
    else:
        forecasts = raw
        calibration_table = (
            factors.withColumn("factor", F.lit(1.0))
            .withColumn("applied", F.lit(False))
            .withColumn("calibrated_coverage", F.col("raw_coverage"))
        )
    status = out.where(F.col("kind") == "status").select(
        "product_id", "status", "model", "model_order", "reason", "n_obs", "aicc", "fit_seconds"
    )
    rows = out.where(F.col("kind") == "metric")
    per_product = metrics.product_metrics(rows)
    overall = metrics.overall_metrics(per_product, rows)
    columns = ["scope", "product_id", "method", "horizon", "n_products", "n_folds", *metrics.SUMS,
               "mase", "smape", "wape", "bias", "coverage"]  # fmt: skip
    table = (
        per_product.select(
            F.lit("product").alias("scope"), "*", F.lit(1).cast("long").alias("n_products")
        )
        .select(*columns)
        .unionByName(
            overall.select(
                F.lit("overall").alias("scope"), F.lit(None).cast("string").alias("product_id"), "*"
            ).select(*columns)
        )
    )
    return {
        "forecasts": forecasts,
        "forecast_status": status,
        "forecast_metrics": table,
        "forecast_calibration": calibration_table.select(
            "model", "level", "horizon", "n_points", "raw_coverage", "factor", "applied",
            "calibrated_coverage",
        ),
    }  # fmt: skip


def _summary(
    status: pd.DataFrame, overall: pd.DataFrame, tasks: int, n: int, horizon: int
) -> dict[str, Any]:
    by_method = {
        r["method"]: {k: (None if pd.isna(r[k]) else round(float(r[k]), 4))
                      for k in ("mase", "smape", "wape", "bias")}
        for _, r in overall[overall["horizon"] == "all"].iterrows()
    }  # fmt: skip
    served = overall[overall["method"] == "model"]
    by_horizon = {  # the served procedure's backtest per bucket of forecast steps
        str(r["horizon"]): {
            "mase": None if pd.isna(r["mase"]) else round(float(r["mase"]), 4),
            **{f"coverage_{level:g}": round(float(share), 4)
               for level, share in sorted(dict(r["coverage"] or {}).items())},
        }
        for _, r in served.iterrows()
    }  # fmt: skip
    return {
        "products": len(status),
        "status_counts": {str(k): int(v) for k, v in status["status"].value_counts().items()},
        "model_counts": {str(k): int(v) for k, v in status["model"].value_counts().items()},
        "backtest": by_method,
        "backtest_horizon": horizon,
        "backtest_by_horizon": by_horizon,
        "backtest_mase_model": by_method.get("model", {}).get("mase"),
        "backtest_mase_seasonal_naive": by_method.get("seasonal_naive", {}).get("mase"),
        "fanout_partitions": n,
        "fanout_tasks_used": tasks,
    }


def run(ctx: StageContext) -> StageResult:
    """Forecasts every product in the sales table and writes the four gold tables."""
    settings = ctx.settings.forecast
    started = time.perf_counter()
    sales = _read_sales(ctx)
    previous = ctx.spark.conf.get(COALESCE_CONF, "true")
    ctx.spark.conf.set(COALESCE_CONF, "false")
    try:
        out = forecast_all(ctx.spark, sales, settings, ctx.as_of).persist()
        out.count()
    finally:
        ctx.spark.conf.set(COALESCE_CONF, previous or "true")
    try:
        tables = split_tables(out, settings)
        status: pd.DataFrame = tables["forecast_status"].toPandas()
        tasks = out.select("task_partition").distinct().count()
        status_df = _stamp(tables["forecast_status"], ctx)
        versions = {
            "gold/forecast_status": ctx.warehouse.write_slice(
                status_df, "gold", "forecast_status", ctx.as_of
            )
        }
        check_failure_share(
            int((status["status"] == "failed").sum()), len(status), settings.max_failure_share
        )
        for name in ("forecasts", "forecast_metrics", "forecast_calibration"):
            df = _stamp(tables[name], ctx)
            versions[f"gold/{name}"] = ctx.warehouse.write_slice(df, "gold", name, ctx.as_of)
        overall: pd.DataFrame = (
            tables["forecast_metrics"].where(F.col("scope") == "overall").toPandas()
        )
        rows_out = {
            "gold/forecasts": int(out.where(F.col("kind") == "forecast").count()),
            "gold/forecast_status": len(status),
        }
    finally:
        out.unpersist()
    horizon = settings.backtest_horizon or settings.horizon
    summary = _summary(status, overall, tasks, fanout_partitions(ctx.spark, settings), horizon)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    log.info("forecast summary: %s", summary)
    return StageResult(tables=versions, rows_in=len(status), rows_out=rows_out, summary=summary)
