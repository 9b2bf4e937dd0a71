"""Synthetic on-hand stock snapshots: the optional `inventory` landing input.

One snapshot per product at the end of every generated week (days 6, 13, ... after the start
date) while the product is sold: on-hand = the product's units sold over the previous 14 days
times a hashed cover factor in [0.3, 1.7), rounded. Layout and columns:
docs/source-contract.md.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from salesopt.datagen.entities import uniform

SNAPSHOT_EVERY_DAYS = 7
COVER_DAYS = 14


def inventory_snapshots(daily: DataFrame, seed: int, start: str, days: int) -> DataFrame:
    """Weekly on-hand per product with sales in the 14 days before the snapshot. Grain: one row
    per (snapshot_date, product_id). `daily` holds product_id, order_date, units."""
    start_col = F.lit(start).cast("date")
    day = F.datediff("order_date", start_col)
    first = day + F.pmod(F.lit(SNAPSHOT_EVERY_DAYS - 1) - day, F.lit(SNAPSHOT_EVERY_DAYS))
    snapshots = F.sequence(first, day + COVER_DAYS - 1, F.lit(SNAPSHOT_EVERY_DAYS))
    cover = 0.3 + 1.4 * uniform(seed, 90, F.col("product_id"), F.col("snap"))
    return (
        daily.withColumn("snap", F.explode(snapshots))
        .where(F.col("snap") < days)
        .groupBy("product_id", "snap")
        .agg(F.sum("units").alias("recent_units"))
        .select(
            F.date_format(F.date_add(start_col, F.col("snap")), "yyyy-MM-dd").alias(
                "snapshot_date"
            ),
            "product_id",
            F.round(F.col("recent_units") * cover).cast("long").alias("on_hand"),
        )
    )


def write_inventory(daily: DataFrame, seed: int, start: str, days: int, path: str) -> None:
    """Writes landing/inventory as header CSV files."""
    (
        inventory_snapshots(daily, seed, start, days)
        .coalesce(1)
        .write.mode("overwrite")
        .option("header", "true")
        .csv(path)
    )
