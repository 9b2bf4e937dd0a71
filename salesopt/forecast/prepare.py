"""Series preparation in Spark: complete, zero-filled calendars per product, bucketed for fan-out.

Pure `DataFrame -> DataFrame` functions. A series runs from the product's first sale (or the start
of the history window) to `origin`, the start of the last complete period on or before `as_of`;
the partial period containing `as_of` is left out so the last point is not an artificial dip.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

STEP = {"daily": "INTERVAL 1 DAY", "weekly": "INTERVAL 7 DAYS", "monthly": "INTERVAL 1 MONTH"}
SOURCE = {"daily": ("sales_daily", "date"), "weekly": ("sales_weekly", "week_start")}
KEYS_PER_BUCKET = 64  # candidate keys searched per bucket when mapping buckets to partitions


def origin_for(as_of: date, frequency: str) -> date:
    """Start of the last period that is complete on `as_of` (its last day <= as_of)."""
    if frequency == "daily":
        return as_of
    if frequency == "weekly":
        monday = as_of - timedelta(days=as_of.weekday())
        return monday if as_of.weekday() == 6 else monday - timedelta(days=7)
    first = as_of.replace(day=1)
    if (as_of + timedelta(days=1)).day == 1:
        return first
    return (first - timedelta(days=1)).replace(day=1)


def period_units(sales: DataFrame, frequency: str) -> DataFrame:
    """Net units per product and period. Grain: (product_id, ds)."""
    ds = F.trunc("date", "month") if frequency == "monthly" else F.col(SOURCE[frequency][1])
    return (
        sales.groupBy("product_id", ds.alias("ds"))
        .agg(F.sum("units").cast("double").alias("y"))
        .select("product_id", "ds", "y")
    )


def _shift(origin: date, periods: int, frequency: str) -> Column:
    if frequency == "monthly":
        return F.add_months(F.lit(origin), -periods)
    days = 7 if frequency == "weekly" else 1
    return F.date_sub(F.lit(origin), days * periods)


def complete_series(
    units: DataFrame, origin: date, frequency: str, history_periods: int
) -> DataFrame:
    """Zero-filled series per product. Grain: (product_id, ds); ds null for a product with no
    sale in a complete period (one sentinel row, so every product reaches the forecaster)."""
    window_start = _shift(origin, history_periods - 1, frequency)
    firsts = units.groupBy("product_id").agg(
        F.min(F.when((F.col("y") > 0) & (F.col("ds") <= F.lit(origin)), F.col("ds"))).alias("first")
    )
    start = F.greatest(F.col("first"), window_start)
    calendar = firsts.select(
        "product_id",
        F.explode_outer(
            F.when(
                F.col("first").isNotNull(),
                F.sequence(start, F.lit(origin), F.expr(STEP[frequency])),
            )
        ).alias("ds"),
    )
    return calendar.join(units, on=["product_id", "ds"], how="left").select(
        "product_id",
        "ds",
        F.when(F.col("ds").isNull(), F.lit(None))
        .otherwise(F.coalesce(F.col("y"), F.lit(0.0)))
        .cast("double")
        .alias("y"),
    )


def bucket_keys(spark: SparkSession, partitions: int) -> DataFrame:
    """One key per bucket 0..partitions-1 whose hash partition is exactly that bucket.

    Grain: bucket. `repartition(partitions, "key")` then sends bucket b to partition b.
    """
    ids = spark.range(partitions * KEYS_PER_BUCKET).withColumnRenamed("id", "key")
    bucket = F.pmod(F.hash(F.col("key")), F.lit(partitions)).alias("bucket")
    return ids.select("key", bucket).groupBy("bucket").agg(F.min("key").alias("key"))


def with_fanout_key(series: DataFrame, keys: DataFrame, partitions: int) -> DataFrame:
    """Adds `key`: products dealt round-robin by series length, so every partition gets a mix
    of long and short series and about the same number of each."""
    lengths = series.groupBy("product_id").agg(F.count("ds").alias("n"))
    order = Window.orderBy(F.col("n").desc(), F.col("product_id"))
    buckets = lengths.select(
        "product_id", (F.row_number().over(order) % F.lit(partitions)).cast("int").alias("bucket")
    )
    return (
        series.join(buckets, on="product_id", how="inner")
        .join(F.broadcast(keys), on="bucket", how="inner")
        .select("key", "product_id", "ds", "y")
    )
