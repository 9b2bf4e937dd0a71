"""Assembles gold/recommendations from ALS, buy-again, popularity and new-product candidates.

Order of a customer's list (docs/recommendations.md):
1. blended ALS + buy-again candidates (source `als` or `buy_again`), by blend score;
2. popular products of the customer's segment (overall when no segment), source `popular`: fills
   the list for customers with too few model candidates and serves customers without factors;
3. at most one new product (launched within `new_product_days`, no factors yet) of the
   customer's top category takes the last slot, source `new_product`.
Excluded everywhere: inactive products and, with `exclude_bought`, products the customer bought
unless their category is a repurchase category.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

ALL_SEGMENTS = "__all__"


def excluded_pairs(interactions: DataFrame, repurchase_categories: list[str]) -> DataFrame:
    """Bought pairs that must not be recommended again. Grain: (customer_id, product_id)."""
    repeatable = (
        F.col("category").isin(repurchase_categories) if repurchase_categories else F.lit(False)
    )
    return interactions.where(~F.coalesce(repeatable, F.lit(False))).select(
        "customer_id", "product_id"
    )


def segment_popularity(
    interactions: DataFrame, segments: DataFrame | None, depth: int
) -> DataFrame:
    """Top `depth` products per segment by buyer share, plus the overall list.

    Grain: (segment_id, product_id); `score` = share of the segment's buyers who bought it.
    """
    overall = interactions.select(
        "customer_id", "product_id", F.lit(ALL_SEGMENTS).alias("segment_id")
    )
    parts = overall
    if segments is not None:
        parts = parts.unionByName(
            interactions.join(segments, on="customer_id", how="inner").select(
                "customer_id", "product_id", F.col("segment_id").cast("string").alias("segment_id")
            )
        )
    order = Window.partitionBy("segment_id").orderBy(F.col("score").desc(), F.col("product_id"))
    buyers = parts.groupBy("segment_id", "product_id").agg(F.count(F.lit(1)).alias("buyers"))
    members = parts.groupBy("segment_id").agg(F.count_distinct("customer_id").alias("members"))
    return (
        buyers.join(members, on="segment_id", how="inner")
        .withColumn("score", F.col("buyers") / F.col("members"))
        .withColumn("pop_rank", F.row_number().over(order))
        .where(F.col("pop_rank") <= depth)
        .select("segment_id", "product_id", "score", "pop_rank")
    )


def popular_candidates(
    customers: DataFrame, popular: DataFrame, segments: DataFrame | None
) -> DataFrame:
    """Popular products of each customer's segment (overall if none). Grain: (customer, product)."""
    with_segment = (
        customers.join(segments, on="customer_id", how="left").select(
            "customer_id",
            F.coalesce(F.col("segment_id").cast("string"), F.lit(ALL_SEGMENTS)).alias("segment_id"),
        )
        if segments is not None
        else customers.select("customer_id", F.lit(ALL_SEGMENTS).alias("segment_id"))
    )
    return with_segment.join(F.broadcast(popular), on="segment_id", how="inner").select(
        "customer_id", "product_id", "score", F.col("pop_rank").cast("double").alias("order_key")
    )


def new_product_candidates(
    interactions: DataFrame, products: DataFrame, known_items: DataFrame, as_of: date, days: int
) -> DataFrame:
    """One new product per customer: the most bought one without factors, launched within
    `days` up to `as_of` (never after: an evaluation at a cut-off does not know later launches),
    in the customer's top category (largest total strength).

    Grain: one row per customer with such a product.
    """
    since = as_of - timedelta(days=days)
    fresh = (
        products.where(
            F.col("launch_date").between(since + timedelta(days=1), as_of)
            & (F.col("status") == "active")
        )
        .join(known_items, on="product_id", how="left_anti")
        .join(interactions.groupBy("product_id").count(), on="product_id", how="left")
        .withColumn("buyers", F.coalesce(F.col("count"), F.lit(0)))
    )
    best = Window.partitionBy("category").orderBy(
        F.col("buyers").desc(), F.col("launch_date").desc(), F.col("product_id")
    )
    per_category = fresh.withColumn("r", F.row_number().over(best)).where(F.col("r") == 1)
    top_category = (
        interactions.groupBy("customer_id", "category")
        .agg(F.sum("strength").alias("s"))
        .groupBy("customer_id")
        .agg(F.max_by("category", F.struct("s", "category")).alias("category"))
    )
    return top_category.join(F.broadcast(per_category), on="category", how="inner").select(
        "customer_id", "product_id", F.lit(None).cast("double").alias("score")
    )


def assemble(
    models: Sequence[str],
    model_rows: DataFrame,
    popular_rows: DataFrame,
    new_rows: DataFrame,
    excluded: DataFrame | None,
    inactive: DataFrame,
    top_n: int,
) -> DataFrame:
    """Final top-N lists of every model in `models`; `model_rows` carry a `model` column (a
    model without rows, such as `popular`, gets the filling alone).

    `popular_rows` and `new_rows` hold no model: they fill and close every model's lists.
    Grain: one row per (model, customer_id, rank).
    """
    pair = ["customer_id", "product_id"]
    models_df = model_rows.sparkSession.createDataFrame([(m,) for m in models], "model string")
    model = model_rows.select(
        "model",
        *pair,
        "score",
        "source",
        F.lit(0).alias("tier"),
        (-F.col("score")).alias("order_key"),
    )
    popular = (
        popular_rows.crossJoin(F.broadcast(models_df))
        .join(model, on=["model", *pair], how="left_anti")
        .select(
            "model", *pair, "score", F.lit("popular").alias("source"), F.lit(1).alias("tier"),
            "order_key",
        )
    )  # fmt: skip
    candidates = model.unionByName(popular).join(inactive, on="product_id", how="left_anti")
    fresh = new_rows.join(inactive, on="product_id", how="left_anti")
    if excluded is not None:
        candidates = candidates.join(excluded, on=pair, how="left_anti")
        fresh = fresh.join(excluded, on=pair, how="left_anti")
    fresh = fresh.crossJoin(F.broadcast(models_df)).join(
        candidates.select("model", *pair), ["model", *pair], "left_anti"
    )
    keep = Window.partitionBy("model", "customer_id").orderBy("tier", "order_key", "product_id")
    slots = fresh.select("model", "customer_id", F.lit(top_n - 1).alias("slots"))
    ranked = (
        candidates.withColumn("rank", F.row_number().over(keep))
        .join(slots, on=["model", "customer_id"], how="left")
        .where(F.col("rank") <= F.coalesce(F.col("slots"), F.lit(top_n)))
    )
    last = Window.partitionBy("model", "customer_id").orderBy("rank")
    tail = fresh.select(
        "model",
        *pair,
        "score",
        F.lit("new_product").alias("source"),
        F.lit(top_n + 1).alias("rank"),
    )
    return (
        ranked.select("model", *pair, "score", "source", "rank")
        .unionByName(tail)
        .withColumn("rank", F.row_number().over(last))
        .select("model", "customer_id", "rank", "product_id", "score", "source")
    )
