"""The segmentation model: one `pyspark.ml` pipeline (log1p, assembler, scaler, KMeans).

The transformation is defined once (`prep_pipeline`) and saved inside the fitted PipelineModel, so
scoring applies exactly the training transformation. The k sweep fits the transformation once,
persists the transformed features and fits one KMeans per k on them.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
from pyspark import StorageLevel
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import KMeans, KMeansModel
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import SQLTransformer, StandardScaler, StandardScalerModel, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from salesopt.config import SegmentationSettings

log = logging.getLogger(__name__)

# model feature -> SQL over gold/customer_features columns; each enters the model as log1p(x).
# Recency and tenure are not model inputs: the lifecycle rule (segment.tables) takes new, at-risk
# and lapsed customers out first, and the model tells the active ones apart by value and pace.
FEATURE_SQL = {
    "frequency": "frequency",
    "monetary": "monetary",
    "orders_per_week": "orders_per_week",
}
FEATURES = tuple(FEATURE_SQL)
RAW_VECTOR = "features_log"
VECTOR = "features_scaled"
CLUSTER = "cluster"


def log_statement() -> str:
    """SQL of the log step: log1p of each feature floored at 0 (negative net revenue -> 0)."""
    logs = ", ".join(
        f"log1p(greatest(CAST({FEATURE_SQL[f]} AS DOUBLE), 0D)) AS {f}_log" for f in FEATURES
    )
    return f"SELECT *, {logs} FROM __THIS__"


def prep_pipeline() -> Pipeline:
    """The feature transformation: log1p, assemble, standardise (mean 0, std 1)."""
    return Pipeline(
        stages=[
            SQLTransformer(statement=log_statement()),
            VectorAssembler(inputCols=[f"{f}_log" for f in FEATURES], outputCol=RAW_VECTOR),
            StandardScaler(inputCol=RAW_VECTOR, outputCol=VECTOR, withMean=True, withStd=True),
        ]
    )


def kmeans(k: int, settings: SegmentationSettings, run: int = 0) -> KMeans:
    return KMeans(
        k=k,
        seed=settings.seed + run,
        maxIter=settings.max_iter,
        initMode="k-means||",
        initSteps=settings.init_steps,
        featuresCol=VECTOR,
        predictionCol=CLUSTER,
    )


@dataclass(frozen=True)
class SweepPoint:
    """Score of one k: silhouette (squared Euclidean) and within-cluster sum of squares."""

    k: int
    silhouette: float
    cost: float
    seconds: float
    iterations: int


@dataclass(frozen=True)
class Fitted:
    """The chosen model and the sweep that chose it."""

    model: PipelineModel
    k: int
    sweep: tuple[SweepPoint, ...]


def _score_k(
    features: DataFrame, k: int, settings: SegmentationSettings
) -> tuple[KMeansModel, SweepPoint]:
    started = time.perf_counter()
    runs = [kmeans(k, settings, run).fit(features) for run in range(settings.init_runs)]
    model = min(runs, key=lambda m: m.summary.trainingCost)  # first of equals: seed order
    silhouette = ClusteringEvaluator(
        featuresCol=VECTOR, predictionCol=CLUSTER, metricName="silhouette"
    ).evaluate(model.transform(features))
    point = SweepPoint(
        k=k,
        silhouette=float(silhouette),
        cost=float(model.summary.trainingCost),
        seconds=round(time.perf_counter() - started, 3),
        iterations=int(model.summary.numIter),
    )
    log.info(
        "k=%d silhouette=%.4f cost=%.1f (%.1fs)", k, point.silhouette, point.cost, point.seconds
    )
    return model, point


def widen(scored: dict[int, float], k_min: int, k_max: int, limit: int) -> int | None:
    """The next k to try when the best silhouette so far sits at an edge of the sweep, else None.

    `scored`: k -> silhouette of every k fitted so far. Best at the largest k tried (and it is at
    least `k_max`) -> one more cluster, up to `limit`; best at the smallest k tried (at most
    `k_min`) -> one fewer, down to 2. Ties go to the smaller k, as in the choice itself.
    """
    best = max(scored, key=lambda k: (scored[k], -k))
    top, bottom = max(scored), min(scored)
    if best == top and top >= k_max and top < limit:
        return top + 1
    if best == bottom and bottom <= k_min and bottom > 2:
        return bottom - 1
    return None


def fit(eligible: DataFrame, settings: SegmentationSettings) -> Fitted:
    """Fits the transformation once, then KMeans for the fixed k or each k of the sweep.

    Each k is fitted `init_runs` times (seeds seed, seed+1, ...) and the lowest cost kept, so a
    poor k-means|| start does not decide the k.
    The sweep keeps the k with the highest silhouette (ties: the smaller k). When that k is at an
    edge of `k_min..k_max` the sweep is widened one k at a time (`widen`), at most
    `segmentation.k_widen` ks beyond k_max. The transformed features are persisted once and
    reused for every k.
    """
    prep = prep_pipeline().fit(eligible)
    features = prep.transform(eligible).select(VECTOR).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        n = features.count()
        ks = (
            [settings.k]
            if settings.k is not None
            else list(range(settings.k_min, settings.k_max + 1))
        )
        ks = [k for k in ks if k < n] or [min(ks[0], max(n - 1, 1))]
        fitted = {k: _score_k(features, k, settings) for k in ks}
        limit = min(settings.k_max + settings.k_widen, n - 1, 50)
        while settings.k is None and settings.k_widen > 0:
            k = widen({k: p.silhouette for k, (_m, p) in fitted.items()}, ks[0], ks[-1], limit)
            if k is None:
                break
            log.info("best k at the edge of the sweep: trying k=%d", k)
            fitted[k] = _score_k(features, k, settings)
    finally:
        features.unpersist()
    best_model, best = max(fitted.values(), key=lambda mp: (mp[1].silhouette, -mp[1].k))
    sweep = tuple(point for _m, point in sorted(fitted.values(), key=lambda mp: mp[1].k))
    if len(sweep) > 1:
        others = ", ".join(f"k={p.k}: {p.silhouette:.3f}" for p in sweep if p.k != best.k)
        log.info(
            "chose k=%d: highest silhouette %.3f over %d customers (others %s); cost %.1f",
            best.k, best.silhouette, n, others, best.cost,
        )  # fmt: skip
    else:
        log.info("k=%d fixed by segmentation.k; silhouette %.3f", best.k, best.silhouette)
    return Fitted(model=PipelineModel(stages=[*prep.stages, best_model]), k=best.k, sweep=sweep)


def _parts(model: PipelineModel) -> tuple[StandardScalerModel, KMeansModel]:
    scaler, km = model.stages[-2], model.stages[-1]
    if not isinstance(scaler, StandardScalerModel) or not isinstance(km, KMeansModel):
        raise TypeError("not a segmentation pipeline: expected ... StandardScaler, KMeans")
    return scaler, km


def centers(model: PipelineModel) -> np.ndarray:
    """Cluster centres in the standardised log space: one row per cluster index."""
    return np.array([np.asarray(c) for c in _parts(model)[1].clusterCenters()])


def to_original_units(model: PipelineModel, scaled: np.ndarray) -> np.ndarray:
    """Points of the standardised log space back in original units (expm1 of the log)."""
    scaler = _parts(model)[0]
    logs = scaled * scaler.std.toArray() + scaler.mean.toArray()
    return np.expm1(logs)


def to_scaled(model: PipelineModel, original: np.ndarray) -> np.ndarray:
    """Points in original units into this model's standardised log space."""
    scaler = _parts(model)[0]
    std = np.where(scaler.std.toArray() > 0, scaler.std.toArray(), 1.0)
    return (np.log1p(np.maximum(original, 0.0)) - scaler.mean.toArray()) / std


def _distance(centres: np.ndarray) -> Column:
    table = F.array(*[F.array(*[F.lit(float(v)) for v in row]) for row in centres])
    centre = F.element_at(table, F.col(CLUSTER) + 1)
    squares = F.zip_with(vector_to_array(F.col(VECTOR)), centre, lambda a, b: (a - b) * (a - b))
    return F.sqrt(F.aggregate(squares, F.lit(0.0), lambda acc, x: acc + x))


def score(model: PipelineModel, eligible: DataFrame) -> DataFrame:
    """Cluster index and Euclidean distance to its centre (standardised log space).

    Grain: one row per input customer; columns customer_id, cluster, distance.
    """
    return (
        model.transform(eligible)
        .withColumn("distance", F.round(_distance(centers(model)), 6))
        .select("customer_id", F.col(CLUSTER).cast("int").alias(CLUSTER), "distance")
    )


def silhouette(model: PipelineModel, eligible: DataFrame) -> float:
    """Silhouette of a (possibly reloaded) model on new customers; NaN with one cluster."""
    if len(_parts(model)[1].clusterCenters()) < 2:
        return math.nan
    evaluator = ClusteringEvaluator(featuresCol=VECTOR, predictionCol=CLUSTER)
    return float(evaluator.evaluate(model.transform(eligible)))
