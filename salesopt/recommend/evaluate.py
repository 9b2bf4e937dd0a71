"""Time-split evaluation of every method's served lists, and the choice of the served method.

A split trains on lines up to `cutoff` and takes the purchases in `(cutoff, end]` as truth. Each
method's lists are built by `lists.build` exactly as they would be served, for the evaluated
customers (those with a test pair whose customer and product appear in training), and scored
against two truths so neither hides the other:

- `all`: the lists as served; relevant = every evaluated test pair;
- `new`: the lists built with every bought product excluded; relevant = the test pairs new to the
  customer (customers without one are not evaluated).

Two splits per as_of: `validation` (ends at the holdout's cut-off) chooses the served method
(`select`), `holdout` (ends at as_of) reports every method, the served one marked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from salesopt.config import RecommendSettings
from salesopt.io.tables import agg_row, materialized
from salesopt.recommend import als, lists, metrics, split

log = logging.getLogger(__name__)
SELECTION_METRIC = "precision_at_k"


@dataclass
class Evaluation:
    """Metric rows of one split and its counts."""

    split: str
    cutoff: date
    rows: list[dict[str, Any]]
    counts: dict[str, Any]
    lists: list[tuple[Any, ...]] | None = None  # with `keep_lists`: the scored lists, sorted

    def precision(self, truth: str = "all") -> dict[str, float]:
        """precision@k per method label (`Method.label`) on one truth."""
        return {
            lists.Method(r["model"], r["blend_weight"]).label: r["value"]
            for r in self.rows
            if r["candidates"] == truth and r["metric"] == SELECTION_METRIC
        }


def _pairs_and_customers(pairs: DataFrame) -> tuple[int, int]:
    """Rows and distinct customers of a (customer_id, product_id) frame, in one query."""
    row = agg_row(pairs.agg(F.count(F.lit(1)), F.count_distinct("customer_id")))
    return int(row[0]), int(row[1])


def evaluate(
    name: str, lines: DataFrame, cutoff: date, end: date, methods: Sequence[lists.Method],
    catalogue: lists.Catalogue, settings: RecommendSettings, half_life: float,
    params: als.AlsParams | None = None, new_methods: Sequence[lists.Method] | None = None,
    keep_lists: bool = False,
) -> Evaluation:  # fmt: skip
    """Scores the served lists of `methods` trained up to `cutoff` on the purchases up to `end`:
    every method against the `all` truth, `new_methods` (default: every method) against `new`."""
    by_truth = {"all": list(methods), "new": list(methods if new_methods is None else new_methods)}
    keep = StorageLevel.MEMORY_AND_DISK
    train = materialized(split.training_interactions(lines, cutoff, half_life))
    test = split.holdout_purchases(lines, cutoff, end).persist(keep)
    known = materialized(split.known_test_pairs(test, train))
    n_test, test_customers = _pairs_and_customers(test)
    n_known, known_customers = _pairs_and_customers(known)
    test.unpersist()
    counts = {
        "cutoff_date": cutoff.isoformat(),
        "test_pairs": n_test,
        "test_pairs_evaluated": n_known,
        "excluded_pair_share": round(1 - n_known / n_test, 6) if n_test else 0.0,
        "test_customers": test_customers,
        "evaluated_customers": known_customers,
        "excluded_customer_share": (
            round(1 - known_customers / test_customers, 6) if test_customers else 0.0
        ),
    }
    log.info("%s split: %s", name, counts)
    fitted = lists.fit(
        lines, train, cutoff, settings, params or als.AlsParams.from_settings(settings),
        with_als=any(m.uses_als for m in methods),
    )  # fmt: skip
    counts["train_pairs"] = fitted.n_ratings
    counts["repurchase_categories"] = fitted.categories
    customers = materialized(known.select("customer_id").distinct())
    ranked = None
    for truth, chosen in by_truth.items():
        if not chosen:
            continue
        built = lists.build(
            fitted, chosen, customers, catalogue, settings, half_life, all_bought=truth == "new"
        ).withColumn("candidates", F.lit(truth))
        ranked = built if ranked is None else ranked.unionByName(built)
    assert ranked is not None, "at least one method"
    ranked = materialized(ranked)  # read twice by the scoring query
    labels = {truth: [m.label for m in chosen] for truth, chosen in by_truth.items()}
    rows = score(ranked, known, labels, fitted.n_items, settings.k)
    kept = (
        sorted(tuple(r) for r in ranked.drop("score").collect()) if keep_lists else None
    )  # for tests: (model, customer_id, rank, product_id, source, candidates)
    by_label = {m.label: m for m in methods}
    for r in rows:
        m = by_label[r["model"]]
        r.update(split=name, model=m.name, blend_weight=m.weight)
    return Evaluation(split=name, cutoff=cutoff, rows=rows, counts=counts, lists=kept)


def score(
    ranked: DataFrame, known: DataFrame, models: Mapping[str, Sequence[str]], n_items: int, k: int
) -> list[dict[str, Any]]:
    """Metric rows per (model, candidates) of `ranked` lists (model, candidates, customer_id,
    rank, product_id) against `known` test pairs, in one aggregation. `models`: the model labels
    scored per truth (`all`, `new`)."""
    spark = ranked.sparkSession
    pairs = [(m, truth) for truth, labels in models.items() for m in labels]
    keys_df = spark.createDataFrame(pairs, "model string, candidates string")
    relevant = (
        known.withColumn("candidates", F.lit("all"))
        .unionByName(known.where(F.col("new_to_customer")).withColumn("candidates", F.lit("new")))
        .join(F.broadcast(keys_df), on="candidates", how="inner")
    )
    keys = ("model", "candidates")
    table = metrics.sql_ranking_metrics(
        metrics.ranking_lists(ranked, relevant, keys), k, keys
    ).join(metrics.sql_coverage(ranked, n_items, k, keys), on=list(keys), how="left")
    rows = []
    for r in table.orderBy(*keys).collect():
        for metric in (*metrics.METRICS, "catalogue_coverage"):
            rows.append(
                {"model": r["model"], "candidates": r["candidates"], "metric": metric, "k": k,
                 "value": float(r[metric] or 0.0), "n_customers": int(r["n_customers"])}
            )  # fmt: skip
    return rows


def best_baseline(precision: Mapping[str, float]) -> str:
    """The baseline with the highest value in `precision` (method label -> value); ties go to
    the simpler one."""
    return max(lists.BASELINES, key=lambda b: (precision.get(b, 0.0), -lists.BASELINES.index(b)))


def candidate_methods(settings: RecommendSettings) -> list[lists.Method]:
    """Every method, blends over `blend_weights`: what validation chooses among."""
    single = [lists.Method(n) for n in lists.METHODS if n != "blend"]
    return single + [lists.Method("blend", w) for w in sorted(settings.blend_weights)]


def new_truth_proxy(m: lists.Method) -> lists.Method:
    """The method whose `new`-truth list equals `m`'s: with every bought product excluded, the
    own-history methods and buy-again have no candidate left (their list is the popular filling)
    and a blend's buy-again term is zero everywhere (its list is ALS's order). So validation
    builds the `new` lists of `popular` and `als` only (tested equal on the holdout)."""
    if m.name in ("own_history", "own_history_decay", "buy_again"):
        return lists.Method("popular")
    if m.name == "blend":
        return lists.Method("als")
    return m


def select(
    rows: Sequence[dict[str, Any]], methods: Sequence[lists.Method], tolerance: float
) -> lists.Method:
    """The served method, from validation rows (docs/recommendations.md, The choice).

    Eligible: methods whose precision@k on `all` (the lists as served) is at least every
    baseline's and within `tolerance` (relative) of the best method's. Among them, the best on
    `new` (products new to the customer) wins, then the best on `all`. A tie, including a
    validation window without evaluated customers, goes to the method listed first in
    `lists.METHODS` (the simpler one), then to the smaller blend weight.
    """

    def value(m: lists.Method, truth: str) -> float:
        key = m if truth == "all" else new_truth_proxy(m)
        return next(
            (r["value"] for r in rows
             if (r["model"], r["blend_weight"]) == (key.name, key.weight)
             and r["candidates"] == truth and r["metric"] == SELECTION_METRIC),
            0.0,
        )  # fmt: skip

    best_all = max(value(m, "all") for m in methods)
    floor = max(
        [best_all * (1 - tolerance)]
        + [value(m, "all") for m in methods if m.name in lists.BASELINES]
    )
    eligible = [m for m in methods if value(m, "all") >= floor - 1e-12]

    def better(m: lists.Method, than: lists.Method) -> bool:
        new = value(m, "new") - value(than, "new")
        if abs(new) > 1e-12:
            return new > 0
        return value(m, "all") > value(than, "all") + 1e-12

    best = eligible[0]
    for m in eligible[1:]:
        if better(m, best):
            best = m
    return best


def validation_cutoff(cutoff: date, holdout_days: int) -> date:
    """The validation window is the `holdout_days` before the holdout's cut-off."""
    return cutoff - timedelta(days=holdout_days)
