"""Ranking metrics at k with binary relevance, in pure Python and in Spark.

Definitions (one customer; `rec` the ranked list, `rel` the set of products bought in the
holdout; averaged over evaluated customers), the same as Spark's `RankingEvaluator`:

- precision@k = |rec[:k] ∩ rel| / k (a list shorter than k still divides by k)
- recall@k    = |rec[:k] ∩ rel| / |rel|
- MAP@k       = sum over hit positions i <= k of precision@i, divided by min(|rel|, k)
- NDCG@k      = DCG / IDCG with DCG = sum over hits of 1 / log2(i + 1) (i from 1) and IDCG the
                DCG of min(|rel|, k) hits at the top
- catalogue coverage = distinct products in any evaluated top-k / products in the catalogue
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from pyspark.ml.evaluation import RankingEvaluator
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

SparkMetric = Literal["precisionAtK", "recallAtK", "meanAveragePrecisionAtK", "ndcgAtK"]
METRICS: dict[str, SparkMetric] = {
    "precision_at_k": "precisionAtK",
    "recall_at_k": "recallAtK",
    "map_at_k": "meanAveragePrecisionAtK",
    "ndcg_at_k": "ndcgAtK",
}


def precision_at_k(rec: Sequence[str], rel: set[str], k: int) -> float:
    return sum(1 for p in rec[:k] if p in rel) / k


def recall_at_k(rec: Sequence[str], rel: set[str], k: int) -> float:
    return sum(1 for p in rec[:k] if p in rel) / len(rel) if rel else 0.0


def average_precision_at_k(rec: Sequence[str], rel: set[str], k: int) -> float:
    hits, total = 0, 0.0
    for i, p in enumerate(rec[:k], start=1):
        if p in rel:
            hits += 1
            total += hits / i
    return total / min(len(rel), k) if rel else 0.0


def ndcg_at_k(rec: Sequence[str], rel: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(i + 1) for i, p in enumerate(rec[:k], start=1) if p in rel)
    idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(rel), k) + 1))
    return dcg / idcg if idcg > 0 else 0.0


def ranking_metrics(
    recs: Mapping[str, Sequence[str]], relevant: Mapping[str, set[str]], k: int
) -> dict[str, float]:
    """Mean metrics over the customers in `relevant` (a customer without recs scores 0)."""
    if not relevant:
        return {name: 0.0 for name in METRICS}
    per_metric = {
        "precision_at_k": precision_at_k,
        "recall_at_k": recall_at_k,
        "map_at_k": average_precision_at_k,
        "ndcg_at_k": ndcg_at_k,
    }
    return {
        name: sum(fn(recs.get(c, ()), rel, k) for c, rel in relevant.items()) / len(relevant)
        for name, fn in per_metric.items()
    }


def coverage(recs: Mapping[str, Sequence[str]], catalogue_size: int, k: int) -> float:
    shown = {p for rec in recs.values() for p in rec[:k]}
    return len(shown) / catalogue_size if catalogue_size else 0.0


def ranking_lists(ranked: DataFrame, relevant: DataFrame, keys: Sequence[str] = ()) -> DataFrame:
    """Per evaluated customer (and `keys`): `prediction` (ranked products) and `label`.

    `ranked`: keys, customer_id, product_id, rank; `relevant`: keys, customer_id, product_id.
    Every (keys, customer) in `relevant` gets a row, with an empty prediction when the model had
    nothing for the customer. Grain: one row per (keys, customer_id).
    """
    by = [*keys, "customer_id"]
    preds = (
        ranked.groupBy(*by)
        .agg(F.sort_array(F.collect_list(F.struct("rank", "product_id"))).alias("ranked"))
        .select(*by, F.transform("ranked", lambda s: s["product_id"]).alias("p"))
    )
    labels = relevant.groupBy(*by).agg(F.collect_list("product_id").alias("label"))
    empty = F.array().cast("array<string>")
    return labels.join(preds, on=by, how="left").select(
        *by, F.coalesce(F.col("p"), empty).alias("prediction"), "label"
    )


def _per_customer(k: int) -> dict[str, Column]:
    """The four metrics of one row of `ranking_lists` as column expressions."""
    hits = f"transform(slice(prediction, 1, {k}), p -> IF(array_contains(label, p), 1, 0))"
    n_rel = f"least(size(label), {k})"
    n_hits = f"aggregate({hits}, 0, (a, h) -> a + h)"
    ap = (
        f"aggregate(transform({hits}, (h, i) -> h * aggregate(slice({hits}, 1, i + 1), 0, "
        f"(a, x) -> a + x) / (i + 1.0)), 0D, (a, x) -> a + x) / {n_rel}"
    )
    dcg = f"aggregate(transform({hits}, (h, i) -> h / log2(i + 2.0)), 0D, (a, x) -> a + x)"
    idcg = f"aggregate(sequence(1, {n_rel}), 0D, (a, i) -> a + 1 / log2(i + 1.0))"
    return {
        "precision_at_k": F.expr(f"{n_hits} / {float(k)}"),
        "recall_at_k": F.expr(f"{n_hits} / size(label)"),
        "map_at_k": F.expr(ap),
        "ndcg_at_k": F.expr(f"{dcg} / {idcg}"),
    }


def sql_ranking_metrics(lists: DataFrame, k: int, keys: Sequence[str] = ()) -> DataFrame:
    """Mean metrics per `keys` in one pass. Grain: one row per keys; plus `n_customers`."""
    per_customer = _per_customer(k)
    return lists.groupBy(*keys).agg(
        *(F.avg(expr).alias(name) for name, expr in per_customer.items()),
        F.count(F.lit(1)).alias("n_customers"),
    )


def evaluator_metrics(lists: DataFrame, k: int) -> dict[str, float]:
    """The same means with Spark's `RankingEvaluator` (needs numeric ids: array<double>)."""
    return {
        name: float(
            RankingEvaluator(metricName=spark_name, k=k, predictionCol="prediction").evaluate(lists)
        )
        for name, spark_name in METRICS.items()
    }


def sql_coverage(
    ranked: DataFrame, catalogue_size: int, k: int, keys: Sequence[str] = ()
) -> DataFrame:
    """Distinct products in any top-k / catalogue size, per `keys`. Grain: one row per keys."""
    return (
        ranked.where(F.col("rank") <= k)
        .groupBy(*keys)
        .agg(
            (F.count_distinct("product_id") / F.lit(float(catalogue_size))).alias(
                "catalogue_coverage"
            )
        )
    )
