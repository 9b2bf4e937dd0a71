"""Backtest error sums from the forecaster into gold/forecast_metrics rows. Pure DataFrames.

Per product: ratios of that product's sums. Overall: ratios of sums over all products (sMAPE,
WAPE, bias, coverage), and for MASE the median of the per-product values.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

SUMS = ("n_points", "sum_abs_error", "sum_actual", "sum_error", "sum_scaled_error", "n_scaled")


def _ratio(num: Column, den: Column) -> Column:
    return F.when(den > 0, num / den)


def _coverage(metric_rows: DataFrame, keys: list[str]) -> DataFrame:
    share = F.struct("level", _ratio(F.sum("covered"), F.sum("n_points")).alias("share"))
    return (
        metric_rows.groupBy(*keys, "level")
        .agg(share.alias("entry"))
        .groupBy(*keys)
        .agg(F.map_from_entries(F.array_sort(F.collect_list("entry"))).alias("coverage"))
    )


def _ratios() -> list[Column]:
    return [
        _ratio(F.col("sum_scaled_error"), F.col("n_scaled")).alias("mase"),
        (100.0 * _ratio(F.col("sum_smape"), F.col("n_points"))).alias("smape"),
        _ratio(F.col("sum_abs_error"), F.col("sum_actual")).alias("wape"),
        _ratio(F.col("sum_error"), F.col("sum_actual")).alias("bias"),
    ]


def product_metrics(metric_rows: DataFrame) -> DataFrame:
    """Grain: (product_id, method, horizon). Sums repeat per level in the input: one is used."""
    keys = ["product_id", "method", "horizon"]
    one_level = metric_rows.groupBy(*keys).agg(
        F.max("n_folds").alias("n_folds"),
        *[F.max(c).alias(c) for c in (*SUMS, "sum_smape")],
    )
    return one_level.join(_coverage(metric_rows, keys), on=keys, how="inner").select(
        *keys, "n_folds", *SUMS, "sum_smape", *_ratios(), "coverage"
    )


def overall_metrics(per_product: DataFrame, metric_rows: DataFrame) -> DataFrame:
    """Grain: (method, horizon). MASE is the median of per-product MASE; the rest ratios of sums."""
    keys = ["method", "horizon"]
    sums = per_product.groupBy(*keys).agg(
        F.count("product_id").alias("n_products"),
        F.max("n_folds").alias("n_folds"),
        *[F.sum(c).alias(c) for c in (*SUMS, "sum_smape")],
        F.percentile(F.col("mase"), 0.5).alias("median_mase"),
    )
    return sums.join(_coverage(metric_rows, keys), on=keys, how="inner").select(
        *keys,
        "n_products",
        "n_folds",
        *SUMS,
        F.col("median_mase").alias("mase"),
        *_ratios()[1:],
        "coverage",
    )
