"""Implicit-feedback ALS: id indexing, ratings, fit, top-N scoring, save and load.

ALS needs integer ids. `index_ids` numbers the distinct ids 0..n-1 in a distributed,
deterministic way (hash buckets, row number inside a bucket, bucket offsets), so nothing but a
few bucket counts passes through the driver. Scoring uses `ALSModel.recommendForUserSubset` /
`recommendForAllUsers` (blocked matrix products on the executors); factors are never collected.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from salesopt.config import RecommendSettings

log = logging.getLogger(__name__)

INDEX_BUCKETS = 64


@dataclass(frozen=True)
class AlsParams:
    rank: int
    reg_param: float
    alpha: float
    max_iter: int

    @classmethod
    def from_settings(cls, s: RecommendSettings) -> AlsParams:
        return cls(rank=s.rank, reg_param=s.reg_param, alpha=s.alpha, max_iter=s.max_iter)


def index_ids(df: DataFrame, id_col: str, index_col: str) -> DataFrame:
    """Dense int index 0..n-1 over the distinct values of `id_col`. Grain: one row per id."""
    ids = df.select(id_col).distinct()
    bucketed = ids.withColumn("_bucket", F.pmod(F.xxhash64(id_col), F.lit(INDEX_BUCKETS)))
    counts = bucketed.groupBy("_bucket").agg(F.count(F.lit(1)).alias("_n"))
    before = Window.orderBy("_bucket").rowsBetween(Window.unboundedPreceding, -1)
    offsets = counts.select("_bucket", F.coalesce(F.sum("_n").over(before), F.lit(0)).alias("_off"))
    within = F.row_number().over(Window.partitionBy("_bucket").orderBy(id_col)) - 1
    return (
        bucketed.withColumn("_within", within)
        .join(F.broadcast(offsets), on="_bucket", how="inner")
        .select(id_col, (F.col("_off") + F.col("_within")).cast("int").alias(index_col))
    )


def ratings(
    interactions: DataFrame, users: DataFrame, items: DataFrame, transform: str
) -> DataFrame:
    """ALS input from interactions: positive strength only. Grain: one row per (user, item)."""
    strength = F.col("strength")
    rating = F.log1p(strength) if transform == "log1p" else strength
    return (
        interactions.where(strength > 0)
        .join(users, on="customer_id", how="inner")
        .join(items, on="product_id", how="inner")
        .select("user", "item", rating.cast("float").alias("rating"))
    )


def n_blocks(n_ratings: int, settings: RecommendSettings) -> int:
    """ALS user/item blocks: one per `block_rows` ratings, at least 2, at most `max_blocks`."""
    return max(2, min(settings.max_blocks, math.ceil(n_ratings / settings.block_rows)))


def fit(
    ratings_df: DataFrame, params: AlsParams, settings: RecommendSettings, blocks: int
) -> ALSModel:
    """Fits implicit ALS with the seed and checkpoint interval from config."""
    als = ALS(
        rank=params.rank,
        regParam=params.reg_param,
        alpha=params.alpha,
        maxIter=params.max_iter,
        implicitPrefs=True,
        seed=settings.seed,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        checkpointInterval=settings.checkpoint_interval,
        coldStartStrategy="drop",
    )
    log.info("fitting ALS %s on %d blocks", params, blocks)
    return als.fit(ratings_df)


def recommend(
    model: ALSModel, users: DataFrame, items: DataFrame, n: int, subset: DataFrame | None = None
) -> DataFrame:
    """Top-`n` ALS scores per customer (of `subset` if given; it needs a `user` column).

    Grain: one row per (customer_id, product_id); `als_rank` 1..n.
    """
    recs = (
        model.recommendForUserSubset(subset.select("user"), n)
        if subset is not None
        else model.recommendForAllUsers(n)
    )
    return (
        recs.select("user", F.posexplode("recommendations").alias("pos", "rec"))
        .select("user", (F.col("pos") + 1).alias("als_rank"), "rec.item", "rec.rating")
        .join(users, on="user", how="inner")
        .join(F.broadcast(items), on="item", how="inner")
        .select(
            "customer_id", "product_id", "als_rank", F.col("rating").cast("double").alias("score")
        )
    )


def save(model: ALSModel, path: str) -> None:
    model.write().overwrite().save(path)


def load(path: str) -> ALSModel:
    return ALSModel.load(path)
