"""Buy again for repeat-purchase goods, popularity, and the blend with ALS candidates.

Buy-again score of a product the customer already bought (docs/recommendations.md):

    rate    = n_purchases / max(days from first purchase to the cut-off + 1, typical interval)
    p       = 1 - exp(-rate * horizon_days)          (Poisson chance of a re-buy in the horizon)
    overdue = max(0, days since last purchase - typical interval)
    score   = p * 0.5 ^ (overdue / half_life_days)   (faded once well past the usual interval)

The typical interval is the product's median gap between a customer's distinct purchase days.
Eligible: products of repurchase categories (config, else categories whose share of customer x
product pairs bought on two or more days is at least `min_repurchase_rate`).

Blend: ALS scores are scaled per customer to a maximum of 1; buy-again scores stay as they are
(a probability of a re-buy within the horizon, in [0, 1]); then
`blend = w * buy_again + (1 - w) * als` (a missing score counts 0); `source` is the larger term.
Keeping the buy-again probability unscaled means a customer's weak re-buy chances do not take top
slots from ALS just because they are that customer's best re-buy chances.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from salesopt.recommend.split import sold_lines


def repurchase_stats(lines: DataFrame, as_of: date) -> DataFrame:
    """Per product: repurchase rate and median days between purchases. Grain: product."""
    days = (
        sold_lines(lines)
        .where(F.col("order_date") <= F.lit(as_of))
        .groupBy("customer_id", "product_id", "category")
        .agg(F.array_sort(F.collect_set("order_date")).alias("dates"))
    )
    gaps = F.transform(
        F.slice(F.col("dates"), 2, F.greatest(F.size("dates") - 1, F.lit(1))),
        lambda d, i: F.datediff(d, F.element_at(F.col("dates"), i + 1)),
    )
    pairs = days.withColumn("gaps", F.when(F.size("dates") > 1, gaps).otherwise(F.array()))
    return (
        pairs.withColumn("gap", F.explode_outer("gaps"))
        .groupBy("product_id")
        .agg(
            F.first("category", ignorenulls=True).alias("category"),
            F.count_distinct("customer_id").alias("buyers"),
            F.count_distinct(F.when(F.size("dates") > 1, F.col("customer_id"))).alias("repeaters"),
            F.percentile_approx("gap", 0.5).alias("typical_interval_days"),
        )
        .select(
            "product_id",
            "category",
            "buyers",
            (F.col("repeaters") / F.col("buyers")).alias("repurchase_rate"),
            "typical_interval_days",
        )
    )


def repurchase_categories(
    stats: DataFrame, configured: tuple[str, ...], min_rate: float
) -> list[str]:
    """Configured categories, else those whose buyer-weighted repurchase rate >= `min_rate`."""
    if configured:
        return sorted(configured)
    rows = (
        stats.groupBy("category")
        .agg((F.sum(F.col("repurchase_rate") * F.col("buyers")) / F.sum("buyers")).alias("rate"))
        .where(F.col("rate") >= min_rate)
        .collect()
    )
    return sorted(r["category"] for r in rows if r["category"] is not None)


def buy_again_scores(
    interactions: DataFrame,
    stats: DataFrame,
    categories: list[str],
    as_of: date,
    horizon_days: int,
    half_life_days: float,
) -> DataFrame:
    """Buy-again score per bought product of an eligible category. Grain: (customer, product)."""
    interval = F.greatest(F.coalesce(F.col("typical_interval_days"), F.lit(horizon_days)), F.lit(1))
    span = F.datediff(F.lit(as_of), F.col("first_purchase_date")) + 1
    rate = F.col("n_purchases") / F.greatest(span.cast("double"), interval.cast("double"))
    since = F.datediff(F.lit(as_of), F.col("last_purchase_date"))
    overdue = F.greatest(since - interval, F.lit(0))
    score = (1 - F.exp(-rate * horizon_days)) * F.pow(F.lit(0.5), overdue / half_life_days)
    return (
        interactions.where(F.col("strength") > 0)
        .join(stats.select("product_id", "typical_interval_days"), on="product_id", how="left")
        .where(F.col("category").isin(categories))
        .select("customer_id", "product_id", score.alias("score"))
    )


def popularity(interactions: DataFrame) -> DataFrame:
    """Products by distinct buyers (ties: product_id). Grain: product; `pop_rank` 1..n."""
    order = Window.orderBy(F.col("score").desc(), F.col("product_id"))
    return (
        interactions.groupBy("product_id")
        .agg(F.count(F.lit(1)).alias("buyers"))
        .select("product_id", F.col("buyers").cast("double").alias("score"))
        .withColumn("pop_rank", F.row_number().over(order))
    )


def _scaled(scores: DataFrame, name: str) -> DataFrame:
    best = F.max("score").over(Window.partitionBy("customer_id"))
    scaled = F.when(best > 0, F.greatest(F.col("score"), F.lit(0.0)) / best).otherwise(0.0)
    return scores.select("customer_id", "product_id", scaled.alias(name))


def blend(als_scores: DataFrame, ba_scores: DataFrame, weight: float) -> DataFrame:
    """Blended candidates. Grain: (customer_id, product_id); `score`, `source`."""
    als_term = F.lit(1.0 - weight) * F.coalesce(F.col("als"), F.lit(0.0))
    ba_term = F.lit(weight) * F.coalesce(F.col("ba"), F.lit(0.0))
    ba = ba_scores.select("customer_id", "product_id", F.col("score").alias("ba"))
    return (
        _scaled(als_scores, "als")
        .join(ba, on=["customer_id", "product_id"], how="full_outer")
        .select(
            "customer_id",
            "product_id",
            (als_term + ba_term).alias("score"),
            F.when(ba_term > als_term, F.lit("buy_again")).otherwise(F.lit("als")).alias("source"),
        )
    )


def top_k(
    candidates: DataFrame, k: int, exclude: DataFrame | None = None, by: Sequence[str] = ()
) -> DataFrame:
    """Best `k` candidates per customer (and `by`) after removing `exclude` pairs; `rank` 1..k."""
    kept = (
        candidates
        if exclude is None
        else candidates.join(exclude, on=["customer_id", "product_id"], how="left_anti")
    )
    order = Window.partitionBy(*by, "customer_id").orderBy(
        F.col("score").desc(), F.col("product_id")
    )
    return kept.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)
