"""The segmentation stage's tables as pure `DataFrame -> DataFrame` functions (grains in
docs/tables.md). Reading and writing happens in `salesopt.segment.stage`."""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from salesopt.config import SegmentationSettings
from salesopt.segment.labels import AT_RISK_ID, FEW_ORDERS_ID, LAPSED_ID, NEW_ID, fixed_labels
from salesopt.segment.model import FEATURES

PROFILE_MEANS = (
    "recency_days", "frequency", "monetary", "tenure_days", "avg_basket", "avg_lines_per_order",
    "orders_per_week",
)  # fmt: skip
SEGMENT_COLUMNS = ("customer_id", "segment_id", "segment_label", "distance")
PROFILE_COLUMNS = (
    "segment_id", "segment_label", "customers", "share", "revenue", "revenue_share",
    "yearly_revenue", *(f"mean_{c}" for c in PROFILE_MEANS), "mean_expected_gap_days",
    *(f"centroid_{f}" for f in FEATURES), "k", "model_as_of",
)  # fmt: skip
MIGRATION_COLUMNS = (
    "previous_as_of", "from_segment_id", "from_segment_label", "to_segment_id", "to_segment_label",
    "customers",
)  # fmt: skip


def own_gap_days() -> Column:
    """The customer's mean days between orders, (tenure - recency) / (orders - 1); null with one
    order or when every order fell on one day (no gap observed: judged like a one-order
    customer)."""
    span = (F.col("tenure_days") - F.col("recency_days")).cast("double")
    return F.when((F.col("frequency") >= 2) & (span >= 1), span / (F.col("frequency") - 1))


REFERENCE_GAP_QUANTILE = 0.75


def typical_gap_days(features: DataFrame) -> float | None:
    """The customer base's reference days between orders: the 75th percentile of repeat
    customers' own mean gaps (three in four repeat customers buy at least this often), at least
    1 day; None when no customer has two orders. The median would judge one-order customers by
    the base's most frequent buyers."""
    gap = F.percentile(own_gap_days(), F.lit(REFERENCE_GAP_QUANTILE))
    row = features.agg(gap.alias("gap")).first()
    return None if row is None or row["gap"] is None else max(float(row["gap"]), 1.0)


def expected_gap_days(typical_gap: float | None) -> Column:
    """Days between orders expected of each customer: the own mean gap shrunk toward the base's
    typical gap with the weight of one gap, ((n - 1) * own + typical) / n; the typical gap when
    there is no own gap. Null when there is neither."""
    n = F.col("frequency").cast("double")
    if typical_gap is None:
        return own_gap_days()
    typical = F.lit(float(typical_gap))
    return F.coalesce(((n - 1) * own_gap_days() + typical) / n, typical)


def lifecycle_segment(
    typical_gap: float | None,
    min_orders: int,
    min_tenure_days: int,
    at_risk_gaps: float,
    lapsed_gaps: float,
) -> Column:
    """Rule-based segment id, null for the active repeat customers the model segments. The first
    rule that holds wins (docs/segmentation.md):

    1. NEW_ID: first order less than `min_tenure_days` ago;
    2. LAPSED_ID: silent for more than `lapsed_gaps` expected gaps (`expected_gap_days`);
    3. AT_RISK_ID: silent for more than `at_risk_gaps` expected gaps;
    4. FEW_ORDERS_ID: fewer than `min_orders` orders.
    """
    overdue = F.col("recency_days") / expected_gap_days(typical_gap)
    return (
        F.when(F.col("tenure_days") < min_tenure_days, F.lit(NEW_ID))
        .when(overdue > lapsed_gaps, F.lit(LAPSED_ID))
        .when(overdue > at_risk_gaps, F.lit(AT_RISK_ID))
        .when(F.col("frequency") < min_orders, F.lit(FEW_ORDERS_ID))
        .cast("int")
    )


def with_fixed_segment(
    features: DataFrame, typical_gap: float | None, settings: SegmentationSettings
) -> DataFrame:
    """Adds `expected_gap_days` and `fixed_segment_id` (see `lifecycle_segment`).
    Grain: one row per customer."""
    s = settings
    rule = lifecycle_segment(
        typical_gap, s.min_orders, s.min_tenure_days, s.at_risk_gaps, s.lapsed_gaps
    )
    return features.withColumn("expected_gap_days", expected_gap_days(typical_gap)).withColumn(
        "fixed_segment_id", rule
    )


def customer_segments(
    scored: DataFrame, fixed: DataFrame, segment_map: DataFrame, min_orders: int
) -> DataFrame:
    """Each customer's segment: model clusters mapped to stable ids, plus the lifecycle segments.

    `scored`: customer_id, cluster, distance; `fixed`: customer_id, fixed_segment_id;
    `segment_map`: cluster, segment_id, segment_label. Grain: one row per customer.
    """
    modelled = scored.join(
        F.broadcast(segment_map.select("cluster", "segment_id", "segment_label")),
        on="cluster",
        how="inner",
    )
    names = F.create_map(
        *[v for i, name in fixed_labels(min_orders).items() for v in (F.lit(i), F.lit(name))]
    )
    held_back = fixed.select(
        "customer_id",
        F.col("fixed_segment_id").alias("segment_id"),
        F.element_at(names, F.col("fixed_segment_id")).alias("segment_label"),
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
        segments.join(
            features.select("customer_id", *PROFILE_MEANS, "expected_gap_days"),
            on="customer_id",
            how="inner",
        )
        .groupBy("segment_id", "segment_label")
        .agg(
            F.count("*").alias("customers"),
            F.round(F.sum("monetary"), 2).alias("revenue"),
            F.round(F.sum(yearly_revenue()), 2).alias("yearly_revenue"),
            *(F.avg(c).alias(f"mean_{c}") for c in (*PROFILE_MEANS, "expected_gap_days")),
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


def yearly_revenue() -> Column:
    """A customer's net revenue per year of tenure (tenure at least 30 days): what the customer
    brings in a year while buying. Summed over at-risk and lapsed customers it is the yearly
    revenue at stake."""
    return F.col("monetary") * 365.0 / F.greatest(F.col("tenure_days"), F.lit(30))


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
