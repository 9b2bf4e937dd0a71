"""Candidate scores of every recommendation method (docs/recommendations.md).

Each function returns (customer_id, product_id, score); a higher score ranks first, ties go to
the smaller product_id.

- `own_history`: the customer's own products by the number of orders that contained them; ties to
  the most recent purchase (a baseline).
- `own_history_decay`: the same orders, each weighted 0.5^(age / half_life) (a baseline).
- `buy_again`: the chance of a re-buy within the horizon from the customer's purchase rate and
  where the product stands in its repurchase cycle (formula at `buy_again_scores`).
- `blend`: ALS scores scaled per customer to a maximum of 1 (left as they are when the
  customer's best is not positive), plus buy-again as it is:
  `w * buy_again + (1 - w) * als`; `source` is the larger term.

Popularity is not a function here: it is the list every customer is filled with
(`serve.segment_popularity`), and the `popular` method is that list alone.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from salesopt.recommend.split import sold_lines

PAIR = ["customer_id", "product_id"]
MAX_SHAPE = 10  # most regular repurchase cycle shape (Erlang k)


def repurchase_stats(lines: DataFrame, as_of: date) -> DataFrame:
    """Per product: buyers, repurchase rate, median days between purchases and the spread of a
    customer's gaps around their own mean (`gap_dev` over `gap_dof`, for the cycle's shape).

    Grain: product.
    """
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
    n_gaps = F.size("gaps")
    mean_gap = F.when(n_gaps > 0, F.aggregate("gaps", F.lit(0.0), lambda a, x: a + x) / n_gaps)
    deviation = F.aggregate(
        "gaps", F.lit(0.0), lambda a, x: a + F.pow(x / F.col("mean_gap") - 1.0, 2)
    )
    pairs = (
        days.withColumn("gaps", F.when(F.size("dates") > 1, gaps).otherwise(F.array()))
        .withColumn("mean_gap", mean_gap)
        .withColumn("dev", F.when(n_gaps >= 2, deviation))
        .withColumn("dof", F.when(n_gaps >= 2, n_gaps - 1))
    )
    first_gap = F.coalesce(F.col("pos"), F.lit(0)) == 0  # one row per pair counts its spread
    return (
        pairs.select("*", F.posexplode_outer("gaps").alias("pos", "gap"))
        .groupBy("product_id")
        .agg(
            F.first("category", ignorenulls=True).alias("category"),
            F.count_distinct("customer_id").alias("buyers"),
            F.count_distinct(F.when(F.size("dates") > 1, F.col("customer_id"))).alias("repeaters"),
            F.percentile_approx("gap", 0.5).alias("typical_interval_days"),
            F.sum(F.when(first_gap, F.col("dev"))).alias("gap_dev"),
            F.sum(F.when(first_gap, F.col("dof"))).alias("gap_dof"),
        )
        .select(
            "product_id",
            "category",
            "buyers",
            (F.col("repeaters") / F.col("buyers")).alias("repurchase_rate"),
            "typical_interval_days",
            "gap_dev",
            "gap_dof",
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


def own_history(interactions: DataFrame, as_of: date) -> DataFrame:
    """Orders containing the product, ties to the latest purchase. Grain: (customer, product)."""
    since = F.datediff(F.lit(as_of), F.col("last_purchase_date"))
    score = F.col("n_purchases") + 1.0 / (since + 2.0)  # the recency term is below 0.5: a tie-break
    return interactions.where(F.col("strength") > 0).select(
        "customer_id", "product_id", score.alias("score")
    )


def own_history_decay(lines: DataFrame, as_of: date, half_life_days: float) -> DataFrame:
    """Orders containing the product, each weighted 0.5^(age_days / half_life_days).

    Grain: (customer_id, product_id) with a sold line on or before `as_of`.
    """
    age = F.datediff(F.lit(as_of), F.col("order_date"))
    return (
        sold_lines(lines)
        .where(F.col("order_date") <= F.lit(as_of))
        .select("customer_id", "product_id", "order_id", "order_date")
        .distinct()
        .groupBy("customer_id", "product_id")
        .agg(F.sum(F.pow(F.lit(0.5), age / half_life_days)).alias("score"))
    )


def _erlang_survival(t: Column, rate: Column, shape: Column) -> Column:
    """P(T > t) for an Erlang(shape, rate) gap: exp(-rate t) sum_{i < shape} (rate t)^i / i!."""
    x = rate * t
    terms = F.aggregate(
        F.sequence(F.lit(0), shape - 1), F.lit(0.0), lambda a, i: a + F.pow(x, i) / F.factorial(i)
    )
    return F.exp(-x) * terms


def buy_again_scores(
    interactions: DataFrame, stats: DataFrame, as_of: date, horizon_days: int
) -> DataFrame:
    """Chance of a re-buy within `horizon_days` of `as_of`. Grain: (customer, product) bought.

    A renewal model (docs/recommendations.md): with n orders of the product, first and last on
    days f and l, s days since l, I the product's median gap between purchase days (else its
    category's, else all products', else the horizon H), c the share of the category's buyers
    who bought a product on two or more days, and k the category's cycle shape (Erlang gaps:
    k = 1 memoryless, larger k more regular; 1 / the variance of a customer's gaps relative to
    their own mean, floored, within 1..MAX_SHAPE):

        g     = (l - f + I) / n                 mean gap: the customer's own plus one gap of I
        pi    = (n - 1 + c) / n                 prior that the customer keeps buying it
        S(t)  = P(gap > t), Erlang(k, k / g)
        score = pi (S(s) - S(s + H)) / (pi S(s) + 1 - pi)

    i.e. the posterior that the customer still buys it (given s days without) times the chance
    the next purchase falls within the horizon.
    """
    spread = F.sum("gap_dev") / F.sum("gap_dof")
    shape = (
        F.when(spread <= 0, F.lit(MAX_SHAPE))  # perfectly regular gaps
        .otherwise(F.least(F.greatest(F.floor(1.0 / spread), F.lit(1)), F.lit(MAX_SHAPE)))
        .cast("int")
    )
    repeat = F.sum(F.col("repurchase_rate") * F.col("buyers")) / F.sum("buyers")
    median_gap = F.percentile_approx("typical_interval_days", 0.5)
    by_category = stats.groupBy("category").agg(
        repeat.alias("c_cat"), median_gap.alias("i_cat"), shape.alias("k_cat")
    )
    overall = stats.agg(repeat.alias("c_all"), median_gap.alias("i_all"))
    n = F.col("n_purchases").cast("double")
    interval = F.coalesce("typical_interval_days", "i_cat", "i_all", F.lit(horizon_days))
    g = F.greatest(
        (F.datediff("last_purchase_date", "first_purchase_date") + interval) / n, F.lit(1.0)
    )
    pi = (n - 1 + F.coalesce("c_cat", "c_all", F.lit(0.0))) / n
    k = F.coalesce(F.col("k_cat"), F.lit(1))
    since = F.datediff(F.lit(as_of), "last_purchase_date")
    survive, survive_h = (
        _erlang_survival(since, k / g, k),
        _erlang_survival(since + horizon_days, k / g, k),
    )
    denominator = pi * survive + 1 - pi
    score = F.when(denominator > 0, pi * (survive - survive_h) / denominator).otherwise(0.0)
    return (
        interactions.where(F.col("strength") > 0)
        .join(stats.select("product_id", "typical_interval_days"), on="product_id", how="left")
        .join(F.broadcast(by_category), on="category", how="left")
        .crossJoin(F.broadcast(overall))
        .select(*PAIR, score.alias("score"))
    )


def _scaled(scores: DataFrame, name: str) -> DataFrame:
    """Scores divided by the customer's best when it is positive (else left as they are): the
    order of a customer's scores is kept, so a blend without buy-again is ALS's order."""
    best = F.max("score").over(Window.partitionBy("customer_id"))
    scaled = F.when(best > 0, F.col("score") / best).otherwise(F.col("score"))
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
            F.when(F.col("ba").isNotNull() & (ba_term > als_term), F.lit("buy_again"))
            .otherwise(F.lit("als"))
            .alias("source"),
        )
    )
