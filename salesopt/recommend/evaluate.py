"""Holdout evaluation: ALS, popularity, buy-again and the blend on the same time split.

Every model ranks candidates for the evaluated customers (those with a known test pair). Two
candidate sets, so neither hides the other:

- `all`: every product may be recommended; relevant = all known test pairs;
- `new`: products the customer bought in training are removed from every model's list first;
  relevant = test pairs new to the customer (customers without one are not evaluated).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from salesopt.config import RecommendSettings
from salesopt.io.tables import agg_row
from salesopt.recommend import als, buy_again, metrics, split

log = logging.getLogger(__name__)


@dataclass
class Holdout:
    """The split and its indexed training data, persisted for several fits."""

    cutoff: date
    as_of: date
    train: DataFrame
    known: DataFrame
    users: DataFrame
    items: DataFrame
    ratings: DataFrame
    n_items: int
    blocks: int
    counts: dict[str, Any] = field(default_factory=dict)


def prepare(
    lines: DataFrame, as_of: date, settings: RecommendSettings, half_life: float
) -> Holdout:
    """Builds the time split, the id indexes and ALS ratings; counts the excluded test share."""
    cutoff = split.cutoff_date(as_of, settings.holdout_days)
    train = split.training_interactions(lines, cutoff, half_life).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    # persisted for its own counts and `known`, then dropped (`known` is kept)
    test = split.holdout_purchases(lines, cutoff, as_of).persist(StorageLevel.MEMORY_AND_DISK)
    known = split.known_test_pairs(test, train).persist(StorageLevel.MEMORY_AND_DISK)
    users = als.index_ids(train, "customer_id", "user").persist(StorageLevel.MEMORY_AND_DISK)
    items = als.index_ids(train, "product_id", "item").persist(StorageLevel.MEMORY_AND_DISK)
    ratings = als.ratings(train, users, items, settings.strength_transform).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    n_ratings = ratings.count()
    n_test, test_customers = _pairs_and_customers(test)
    n_known, known_customers = _pairs_and_customers(known)
    test.unpersist()
    counts = {
        "cutoff_date": cutoff.isoformat(),
        "train_pairs": n_ratings,
        "test_pairs": n_test,
        "test_pairs_evaluated": n_known,
        "excluded_pair_share": round(1 - n_known / n_test, 6) if n_test else 0.0,
        "test_customers": test_customers,
        "excluded_customer_share": (
            round(1 - known_customers / test_customers, 6) if test_customers else 0.0
        ),
    }
    log.info("holdout split: %s", counts)
    return Holdout(
        cutoff=cutoff, as_of=as_of, train=train, known=known, users=users, items=items,
        ratings=ratings, n_items=items.count(), blocks=als.n_blocks(n_ratings, settings),
        counts=counts,
    )  # fmt: skip


def _pairs_and_customers(pairs: DataFrame) -> tuple[int, int]:
    """Rows and distinct customers of a (customer_id, product_id) frame, in one query."""
    row = agg_row(pairs.agg(F.count(F.lit(1)), F.count_distinct("customer_id")))
    return int(row[0]), int(row[1])


def _depth(h: Holdout, customers: DataFrame, k: int, settings: RecommendSettings) -> int:
    """Candidates per customer: k plus the most products one evaluated customer bought."""
    bought = (
        h.train.join(customers, on="customer_id", how="left_semi").groupBy("customer_id").count()
    )
    most = bought.agg(F.max("count")).first()
    extra = int(most[0]) if most and most[0] is not None else 0
    return max(k, min(h.n_items, k + extra, settings.max_candidates))


def score_models(candidates: DataFrame, h: Holdout, k: int) -> list[dict[str, Any]]:
    """Metric rows per (model, candidate set) from `candidates` (model, customer, product, score).

    All models and both candidate sets are scored in one aggregation.
    """
    bought = h.train.select("customer_id", "product_id")
    ranked = (
        buy_again.top_k(candidates, k, by=("model",)).withColumn("candidates", F.lit("all"))
        .unionByName(
            buy_again.top_k(candidates, k, bought, by=("model",))
            .withColumn("candidates", F.lit("new"))
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )  # fmt: skip
    models = candidates.select("model").distinct()
    relevant = (
        h.known.withColumn("candidates", F.lit("all"))
        .unionByName(h.known.where(F.col("new_to_customer")).withColumn("candidates", F.lit("new")))
        .crossJoin(F.broadcast(models))
    )
    keys = ("model", "candidates")
    lists = metrics.ranking_lists(ranked, relevant, keys)
    table = metrics.sql_ranking_metrics(lists, k, keys).join(
        metrics.sql_coverage(ranked, h.n_items, k, keys), on=list(keys), how="left"
    )
    rows = []
    for r in table.orderBy(*keys).collect():
        for metric in (*metrics.METRICS, "catalogue_coverage"):
            rows.append(
                {"model": r["model"], "candidates": r["candidates"], "metric": metric, "k": k,
                 "value": float(r[metric] or 0.0), "n_customers": int(r["n_customers"])}
            )  # fmt: skip
    ranked.unpersist()
    return rows


def als_candidates(
    h: Holdout, params: als.AlsParams, settings: RecommendSettings, depth: int
) -> DataFrame:
    evaluated = h.known.select("customer_id").distinct().join(h.users, "customer_id", "inner")
    model = als.fit(h.ratings, params, settings, h.blocks)
    return als.recommend(model, h.users, h.items, depth, subset=evaluated).select(
        "customer_id", "product_id", "score"
    )


def evaluate(
    h: Holdout, lines: DataFrame, settings: RecommendSettings, half_life: float
) -> list[dict[str, Any]]:
    """Metric rows for als, popular, buy_again and blend on both candidate sets."""
    k = settings.k
    customers = h.known.select("customer_id").distinct().persist(StorageLevel.MEMORY_AND_DISK)
    depth = _depth(h, customers, k, settings)
    als_c = als_candidates(h, als.AlsParams.from_settings(settings), settings, depth).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    popular = buy_again.popularity(h.train).where(F.col("pop_rank") <= depth)
    pop_c = customers.crossJoin(F.broadcast(popular.select("product_id", "score")))
    stats = buy_again.repurchase_stats(lines, h.cutoff)
    categories = buy_again.repurchase_categories(
        stats, settings.repurchase_categories, settings.min_repurchase_rate
    )
    ba_c = buy_again.buy_again_scores(
        h.train.join(customers, on="customer_id", how="left_semi"), stats, categories,
        h.cutoff, settings.holdout_days, half_life,
    ).persist(StorageLevel.MEMORY_AND_DISK)  # fmt: skip
    blend_c = buy_again.blend(als_c, ba_c, settings.buy_again_weight)
    candidates = (
        als_c.withColumn("model", F.lit("als"))
        .unionByName(pop_c.withColumn("model", F.lit("popular")))
        .unionByName(ba_c.withColumn("model", F.lit("buy_again")))
        .unionByName(
            blend_c.select("customer_id", "product_id", "score").withColumn("model", F.lit("blend"))
        )
    )
    rows = score_models(candidates, h, k)
    h.counts["repurchase_categories"] = categories
    als_c.unpersist()
    ba_c.unpersist()
    customers.unpersist()
    return rows


def grid(h: Holdout, settings: RecommendSettings) -> list[dict[str, Any]]:
    """ALS metrics for every (rank, reg_param, alpha) in the configured grid."""
    customers = h.known.select("customer_id").distinct()
    depth = _depth(h, customers, settings.k, settings)
    rows: list[dict[str, Any]] = []
    for rank in settings.grid_ranks:
        for reg in settings.grid_reg_params:
            for alpha in settings.grid_alphas:
                params = als.AlsParams(
                    rank=rank, reg_param=reg, alpha=alpha, max_iter=settings.max_iter
                )
                candidates = als_candidates(h, params, settings, depth)
                scored = score_models(candidates.withColumn("model", F.lit("als")), h, settings.k)
                for row in scored:
                    rows.append({**row, "rank": rank, "reg_param": reg, "alpha": alpha})
    return rows


def release(h: Holdout) -> None:
    for df in (h.train, h.known, h.users, h.items, h.ratings):
        df.unpersist()
