"""The segmentation stage's tables as pure `DataFrame -> DataFrame` functions (grains in
docs/tables.md). Reading and writing happens in `salesopt.segment.stage`."""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from salesopt.segment.labels import FEW_ORDERS_ID, FEW_ORDERS_LABEL, NEW_ID, NEW_LABEL
from salesopt.segment.model import FEATURES

PROFILE_MEANS = (
    "recency_days", "frequency", "monetary", "tenure_days", "avg_basket", "avg_lines_per_order",
    "orders_per_week",
)  # fmt: skip
SEGMENT_COLUMNS = ("customer_id", "segment_id", "segment_label", "distance")
PROFILE_COLUMNS = (
    "segment_id", "segment_label", "customers", "share", "revenue", "revenue_share",
    *(f"mean_{c}" for c in PROFILE_MEANS), *(f"centroid_{f}" for f in FEATURES), "k",
    "model_as_of",
)  # fmt: skip
MIGRATION_COLUMNS = (
    "previous_as_of", "from_segment_id", "from_segment_label", "to_segment_id", "to_segment_label",
    "customers",
)  # fmt: skip


def fixed_segment(min_orders: int, min_tenure_days: int) -> Column:
    """Fixed segment id for too little history, null for customers the model segments.

    Tenure below `min_tenure_days` -> NEW_ID; otherwise fewer than `min_orders` orders ->
    FEW_ORDERS_ID.
    """
    return (
        F.when(F.col("tenure_days") < min_tenure_days, F.lit(NEW_ID))
        .when(F.col("frequency") < min_orders, F.lit(FEW_ORDERS_ID))
        .cast("int")
    )


def with_fixed_segment(features: DataFrame, min_orders: int, min_tenure_days: int) -> DataFrame:
    """Adds `fixed_segment_id` (see `fixed_segment`). Grain: one row per customer."""
    return features.withColumn("fixed_segment_id", fixed_segment(min_orders, min_tenure_days))


def customer_segments(scored: DataFrame, fixed: DataFrame, segment_map: DataFrame) -> DataFrame:
    """Each customer's segment: model clusters mapped to stable ids, plus the fixed segments.

    `scored`: customer_id, cluster, distance; `fixed`: customer_id, fixed_segment_id;
    `segment_map`: cluster, segment_id, segment_label. Grain: one row per customer.
    """
    modelled = scored.join(
        F.broadcast(segment_map.select("cluster", "segment_id", "segment_label")),
        on="cluster",
        how="inner",
    )
    label = F.when(F.col("fixed_segment_id") == NEW_ID, F.lit(NEW_LABEL)).otherwise(
        F.lit(FEW_ORDERS_LABEL)
    )
    held_back = fixed.select(
        "customer_id",
        F.col("fixed_segment_id").alias("segment_id"),
        label.alias("segment_label"),
        F.lit(None).cast("double").alias("distance"),
    )
    return (
        modelled.select(*SEGMENT_COLUMNS)
        .unionByName(held_back)
        .select(
            "customer_id",
            F.col("segment_id").cast("int").alias("segment_id"),
            "segment_label",
            "distance",
        )
    )


def segment_profiles(
    segments: DataFrame, features: DataFrame, segment_map: DataFrame, k: int, model_as_of: date
) -> DataFrame:
    """Size, shares, member means and model centroid of each segment. Grain: one row per segment.

    Centroids (original units) exist for model segments only; fixed segments have nulls there.
    """
    everyone = Window.partitionBy()
    centroids = segment_map.select("segment_id", *(f"centroid_{f}" for f in FEATURES))
    return (
        segments.join(features.select("customer_id", *PROFILE_MEANS), on="customer_id", how="inner")
        .groupBy("segment_id", "segment_label")
        .agg(
            F.count("*").alias("customers"),
            F.round(F.sum("monetary"), 2).alias("revenue"),
            *(F.avg(c).alias(f"mean_{c}") for c in PROFILE_MEANS),
        )
        .withColumn("share", F.col("customers") / F.sum("customers").over(everyone))
        .withColumn(
            "revenue_share",
            F.coalesce(
                F.col("revenue") / F.nullif(F.sum("revenue").over(everyone), F.lit(0.0)), F.lit(0.0)
            ),
        )
        .join(F.broadcast(centroids), on="segment_id", how="left")
        .withColumn("k", F.lit(k))
        .withColumn("model_as_of", F.lit(model_as_of))
        .select(*PROFILE_COLUMNS)
    )


def segment_migration(previous: DataFrame, current: DataFrame, previous_as_of: date) -> DataFrame:
    """Customers moving between segments since `previous_as_of`.

    Both inputs: customer_id, segment_id, segment_label. A customer absent on one side has a null
    segment there. Grain: one row per (from_segment_id, to_segment_id) pair with customers.
    """
    before = previous.select(
        "customer_id",
        F.col("segment_id").alias("from_segment_id"),
        F.col("segment_label").alias("from_segment_label"),
    )
    after = current.select(
        "customer_id",
        F.col("segment_id").alias("to_segment_id"),
        F.col("segment_label").alias("to_segment_label"),
    )
    return (
        before.join(after, on="customer_id", how="full")
        .groupBy("from_segment_id", "from_segment_label", "to_segment_id", "to_segment_label")
        .agg(F.count("*").alias("customers"))
        .withColumn("previous_as_of", F.lit(previous_as_of))
        .select(*MIGRATION_COLUMNS)
    )
