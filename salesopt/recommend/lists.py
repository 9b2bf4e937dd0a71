"""The one path from training data to top-N lists: serving and evaluation both call `build`.

`fit` prepares everything a list is built from at one cut-off (id indexes, the ALS model when a
method needs it, repurchase statistics); `build` turns it into the lists of one or more methods
for a set of customers, with the serving rules: candidate depth, exclusions, popular filling and
the new-product slot (serve.assemble). The production lists are `build` at `as_of` for every
customer; the evaluation scores `build` at a cut-off for the evaluated customers, so the metrics
describe exactly the lists a customer would have been served.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pyspark import StorageLevel
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from salesopt.config import RecommendSettings
from salesopt.io.tables import materialized
from salesopt.recommend import als, candidates, serve

log = logging.getLogger(__name__)

# in this order: a tie on validation goes to the earlier (simpler) method
METHODS = ("popular", "own_history", "own_history_decay", "buy_again", "als", "blend")
BASELINES = ("popular", "own_history", "own_history_decay")
PAIR = ["customer_id", "product_id"]


@dataclass(frozen=True)
class Method:
    name: str
    weight: float | None = None  # blend only: the buy-again weight w

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise ValueError(f"unknown recommendation method {self.name!r}")
        if (self.name == "blend") != (self.weight is not None):
            raise ValueError("a blend needs a weight, and only a blend has one")

    @property
    def label(self) -> str:
        return f"blend_{self.weight:g}" if self.name == "blend" else self.name

    @property
    def uses_als(self) -> bool:
        return self.name in ("als", "blend")


@dataclass
class Fitted:
    """Training data at one cut-off and what was fitted on it."""

    cutoff: date
    lines: DataFrame
    interactions: DataFrame
    users: DataFrame
    items: DataFrame
    model: ALSModel | None
    stats: DataFrame
    categories: list[str]
    n_ratings: int
    n_items: int


@dataclass(frozen=True)
class Catalogue:
    """What every list is checked against: products (status, launch date) and segments."""

    products: DataFrame
    segments: DataFrame | None


def fit(
    lines: DataFrame,
    interactions: DataFrame,
    cutoff: date,
    settings: RecommendSettings,
    params: als.AlsParams,
    with_als: bool,
) -> Fitted:
    """Indexes ids, fits ALS (when `with_als`) and computes repurchase statistics at `cutoff`."""
    users = materialized(als.index_ids(interactions, "customer_id", "user"))
    items = materialized(als.index_ids(interactions, "product_id", "item"))
    ratings = als.ratings(interactions, users, items, settings.strength_transform).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    n_ratings, n_items = ratings.count(), items.count()
    model = (
        als.fit(ratings, params, settings, als.n_blocks(n_ratings, settings)) if with_als else None
    )
    stats = materialized(candidates.repurchase_stats(lines, cutoff))
    categories = candidates.repurchase_categories(
        stats, settings.repurchase_categories, settings.min_repurchase_rate
    )
    ratings.unpersist()
    return Fitted(
        cutoff=cutoff, lines=lines, interactions=interactions, users=users, items=items,
        model=model, stats=stats, categories=categories, n_ratings=n_ratings, n_items=n_items,
    )  # fmt: skip


def excluded(f: Fitted, settings: RecommendSettings, all_bought: bool = False) -> DataFrame | None:
    """Pairs never recommended: every bought pair (`all_bought`, the "new products" evaluation)
    or, with `exclude_bought`, bought pairs outside the repurchase categories."""
    if all_bought:
        return f.interactions.select(*PAIR)
    if settings.exclude_bought:
        return serve.excluded_pairs(f.interactions, f.categories)
    return None


def depth(f: Fitted, excluded_pairs: DataFrame | None, top_n: int, cap: int) -> int:
    """ALS and popular candidates per customer: `top_n` plus the most products any customer has
    excluded, at most `cap` (`recommend.max_candidates`) and the catalogue. It does not depend on
    which customers are listed, so a customer's list is the same in serving and evaluation."""
    most = 0
    if excluded_pairs is not None:
        row = excluded_pairs.groupBy("customer_id").count().agg(F.max("count")).first()
        most = int(row[0]) if row and row[0] is not None else 0
    return max(top_n, min(f.n_items, top_n + most, cap))


def _method_rows(
    f: Fitted, methods: Sequence[Method], customers: DataFrame, n: int,
    settings: RecommendSettings, half_life: float,
) -> DataFrame | None:  # fmt: skip
    """Candidates of every method but `popular` (whose list is the filling alone)."""
    mine = f.interactions.join(customers, on="customer_id", how="left_semi")
    ba: DataFrame | None = None
    als_c: DataFrame | None = None
    if any(m.name in ("buy_again", "blend") for m in methods):
        ba = materialized(
            candidates.buy_again_scores(mine, f.stats, f.cutoff, settings.holdout_days)
        )
    if any(m.uses_als for m in methods):
        if f.model is None:
            raise ValueError("ALS methods need `fit(..., with_als=True)`")
        subset = customers.join(f.users, on="customer_id", how="inner")
        als_c = materialized(
            als.recommend(f.model, f.users, f.items, n, subset=subset).select(*PAIR, "score")
        )
    parts = []
    for m in methods:
        if m.name == "own_history":
            rows = candidates.own_history(mine, f.cutoff).withColumn("source", F.lit("buy_again"))
        elif m.name == "own_history_decay":
            lines = f.lines.join(customers, on="customer_id", how="left_semi")
            rows = candidates.own_history_decay(lines, f.cutoff, half_life).withColumn(
                "source", F.lit("buy_again")
            )
        elif m.name == "buy_again" and ba is not None:
            rows = ba.withColumn("source", F.lit("buy_again"))
        elif m.name == "als" and als_c is not None:
            rows = als_c.withColumn("source", F.lit("als"))
        elif m.name == "blend" and als_c is not None and ba is not None:
            rows = candidates.blend(als_c, ba, float(m.weight or 0.0))
        else:
            continue
        parts.append(rows.select(F.lit(m.label).alias("model"), *PAIR, "score", "source"))
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return materialized(out)


def build(
    f: Fitted, methods: Sequence[Method], customers: DataFrame, catalogue: Catalogue,
    settings: RecommendSettings, half_life: float, all_bought: bool = False,
) -> DataFrame:  # fmt: skip
    """Top-`top_n` lists of each method for `customers` (column `customer_id`).

    Grain: one row per (model, customer_id, rank); `model` is `Method.label`.
    """
    spark = customers.sparkSession
    ex = excluded(f, settings, all_bought)
    n = depth(f, ex, settings.top_n, settings.max_candidates)
    rows = _method_rows(f, methods, customers, n, settings, half_life)
    if rows is None:
        rows = spark.createDataFrame(
            [], "model string, customer_id string, product_id string, score double, source string"
        )
    segments = catalogue.segments
    popular = serve.segment_popularity(f.interactions, segments, n)
    products = catalogue.products
    inactive = products.where(F.col("status") != "active").select("product_id")
    fresh = serve.new_product_candidates(
        f.interactions, products, f.items, f.cutoff, settings.new_product_days
    ).join(customers, on="customer_id", how="left_semi")
    return serve.assemble(
        [m.label for m in methods], rows, serve.popular_candidates(customers, popular, segments),
        fresh, ex, inactive, settings.top_n,
    )  # fmt: skip
