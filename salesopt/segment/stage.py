"""The segmentation stage: reads gold/customer_features, writes the segment tables in one place.

Fit (or reload) the model, give its clusters stable ids and labels, score every customer and
write gold/customer_segments, gold/segment_profiles, gold/segment_model_selection and
gold/segment_migration for the run's `as_of`. See docs/segmentation.md.
"""

from __future__ import annotations

import logging
import math
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from salesopt.config import SegmentationSettings
from salesopt.context import StageContext, StageResult
from salesopt.errors import InputError
from salesopt.segment import store
from salesopt.segment.labels import (
    ACTIVE_ID,
    ACTIVE_LABEL,
    CHURN_IDS,
    initial_segment_ids,
    match_segment_ids,
    segment_label,
    unique_labels,
)
from salesopt.segment.model import (
    FEATURES,
    SweepPoint,
    centers,
    fit,
    score,
    silhouette,
    to_original_units,
    to_scaled,
)
from salesopt.segment.tables import (
    PROFILE_MEANS,
    customer_segments,
    segment_migration,
    segment_profiles,
    typical_gap_days,
    with_fixed_segment,
)

log = logging.getLogger(__name__)

CENTROIDS = [f"centroid_{f}" for f in FEATURES]
MAP_SCHEMA = "cluster int, segment_id int, segment_label string, " + ", ".join(
    f"{c} double" for c in CENTROIDS
)
MIN_MODELLED = 10  # fewer active repeat customers are not clustered
SELECTION_SCHEMA = (
    "k int, silhouette double, cost double, iterations int, seconds double, chosen boolean, "
    "fitted boolean, model_as_of date, model_path string, customers long"
)


def build_segment_map(model: PipelineModel, previous: pd.DataFrame | None) -> pd.DataFrame:
    """Cluster index -> stable segment id, label and centroid (original units).

    Ids follow the previous run's segments by Hungarian matching of centroids in this model's
    standardised space; with no previous segments they are ranked by centroid monetary value.
    """
    scaled = centers(model)
    original = to_original_units(model, scaled)
    monetary = original[:, FEATURES.index("monetary")].tolist()
    z = [dict(zip(FEATURES, row, strict=True)) for row in scaled]
    labels = [segment_label(row) for row in z]
    usable = previous is not None and not previous.empty and set(CENTROIDS) <= set(previous)
    if previous is not None and usable:
        before = previous.dropna(subset=CENTROIDS)
        ids = match_segment_ids(
            to_scaled(model, before[CENTROIDS].to_numpy(dtype=float)),
            before["segment_id"].astype(int).tolist(),
            scaled,
        )
    else:
        ids = initial_segment_ids(monetary)
    frame = pd.DataFrame(original, columns=CENTROIDS)
    frame.insert(0, "segment_label", unique_labels(labels, z))
    frame.insert(0, "segment_id", np.asarray(ids, dtype="int32"))
    frame.insert(0, "cluster", np.arange(len(ids), dtype="int32"))
    return frame


def _previous_as_of(ctx: StageContext) -> date | None:
    """The latest as_of before this run's with customer segments, if any."""
    wh = ctx.warehouse
    tables = ("customer_segments", "segment_profiles")
    if not all(wh.exists(ctx.spark, "gold", name) for name in tables):
        return None
    row = (
        wh.read(ctx.spark, "gold", "segment_profiles")
        .where(F.col("as_of") < F.lit(ctx.as_of))
        .agg(F.max("as_of").alias("as_of"))
        .first()
    )
    return row["as_of"] if row else None


def _profiles_at(ctx: StageContext, as_of: date | None) -> pd.DataFrame | None:
    if as_of is None:
        return None
    profiles: pd.DataFrame = ctx.warehouse.read_as_of(
        ctx.spark, "gold", "segment_profiles", as_of
    ).toPandas()
    return profiles


def _selection_rows(
    sweep: tuple[SweepPoint, ...], k: int, path: str, as_of: date, customers: int
) -> list[tuple[Any, ...]]:
    return [
        (p.k, p.silhouette, p.cost, p.iterations, p.seconds, p.k == k, True, as_of,
         path if p.k == k else None, customers)
        for p in sweep
    ]  # fmt: skip


def _model(
    ctx: StageContext, eligible: DataFrame, previous: pd.DataFrame | None
) -> tuple[PipelineModel, pd.DataFrame, list[tuple[Any, ...]], date]:
    """Fits and saves a model (refit) or loads the latest saved one; returns the selection rows."""
    s, spark, as_of = ctx.settings.segmentation, ctx.spark, ctx.as_of
    if s.refit:
        fitted = fit(eligible, s)
        segment_map = build_segment_map(fitted.model, previous)
        path = store.model_dir(ctx.warehouse, as_of)
        store.save(spark, fitted.model, segment_map, path)
        customers = eligible.count()
        return (
            fitted.model,
            segment_map,
            _selection_rows(fitted.sweep, fitted.k, path, as_of, customers),
            as_of,
        )
    model_as_of, path = store.latest_model(spark, ctx.warehouse, as_of)
    model, segment_map = store.load(spark, path)
    log.info("segmentation.refit is false: scoring with the model of %s (%s)", model_as_of, path)
    value = silhouette(model, eligible)
    row = (
        len(segment_map),
        value,
        None,
        None,
        None,
        True,
        False,
        model_as_of,
        path,
        eligible.count(),
    )
    return model, segment_map, [row], model_as_of


def _share_shifts(
    now: pd.DataFrame, before: pd.DataFrame | None, alert: float
) -> list[dict[str, Any]]:
    if before is None:
        return []
    joined = now.merge(
        before[["segment_id", "share"]], on="segment_id", how="outer", suffixes=("", "_before")
    ).fillna({"share": 0.0, "share_before": 0.0})
    joined["shift"] = joined["share"] - joined["share_before"]
    flagged = joined[joined["shift"].abs() > alert]
    rows: list[dict[Any, Any]] = flagged.to_dict("records")
    for r in rows:
        log.warning(
            "segment %s share moved %+.3f since the previous run", r["segment_id"], r["shift"]
        )
    return [
        {"segment_id": int(r["segment_id"]), "shift": round(float(r["shift"]), 4)} for r in rows
    ]


def _with_run(df: DataFrame, ctx: StageContext) -> DataFrame:
    return df.withColumn("as_of", F.lit(ctx.as_of)).withColumn("run_id", F.lit(ctx.run_id))


def _read_features(ctx: StageContext) -> DataFrame:
    wh = ctx.warehouse
    no_customers = (
        f"no customer has an accepted order line on or before {ctx.as_of}, so there is nothing "
        "to segment: check that orders were delivered under "
        f"{ctx.settings.paths.landing.rstrip('/')}/orders and that --as-of is not before the "
        "first order (the gold stage writes gold/customer_features from them: run it first when "
        "running stages one at a time)"
    )
    if not wh.exists(ctx.spark, "gold", "customer_features"):
        raise InputError(f"{no_customers}; no gold/customer_features under {wh.root}")
    features = wh.read_as_of(ctx.spark, "gold", "customer_features", ctx.as_of)
    if features.isEmpty():
        raise InputError(no_customers)
    return features.select("customer_id", *PROFILE_MEANS)


def _migration(ctx: StageContext, segments: DataFrame, previous_as_of: date | None) -> DataFrame:
    if previous_as_of is None:
        empty = ctx.spark.createDataFrame(
            [], "customer_id string, segment_id int, segment_label string"
        )
        return segment_migration(empty, empty, ctx.as_of).limit(0)
    before = ctx.warehouse.read_as_of(ctx.spark, "gold", "customer_segments", previous_as_of)
    return segment_migration(before, segments, previous_as_of)


def edge_note(ks: list[int], chosen: int, settings: SegmentationSettings) -> str | None:
    """A sentence for the summary when the chosen k is still at an edge of the (widened) sweep."""
    if settings.k is not None or len(ks) < 2:
        return None
    if chosen == max(ks) and chosen >= settings.k_max:
        return (
            f"k={chosen} is the largest k tried (k_max {settings.k_max} + k_widen "
            f"{settings.k_widen}): more clusters may fit better; raise segmentation.k_max"
        )
    if chosen == min(ks) and chosen > 2:
        return f"k={chosen} is the smallest k tried: fewer clusters may fit better"
    return None


def _summary(
    profiles: pd.DataFrame, chosen: tuple[Any, ...], sweep: list[tuple[Any, ...]]
) -> dict[str, Any]:
    ordered: list[dict[Any, Any]] = profiles.sort_values("segment_id").to_dict("records")
    sil = chosen[1]
    churn = profiles[profiles["segment_id"].isin(CHURN_IDS)]
    return {
        "k": int(chosen[0]),
        "silhouette": None if sil is None or math.isnan(sil) else round(float(sil), 4),
        "refit": bool(chosen[6]),
        "model_as_of": chosen[7].isoformat(),
        "segments": [
            {
                "segment_id": int(r["segment_id"]), "label": r["segment_label"],
                "size": int(r["customers"]), "share": round(float(r["share"]), 4),
                "revenue_share": round(float(r["revenue_share"]), 4),
            }
            for r in ordered
        ],
        "churn_risk": {
            "customers": int(churn["customers"].sum()),
            "share": round(float(churn["share"].sum()), 4),
            "yearly_revenue": round(float(churn["yearly_revenue"].sum()), 2),
        },
        "sweep": [
            {"k": int(r[0]), "silhouette": round(float(r[1]), 4), "cost": round(float(r[2]), 2)}
            for r in sweep if r[6]
        ],
    }  # fmt: skip


def run(ctx: StageContext) -> StageResult:
    """Writes the as_of slices of the four segmentation tables."""
    spark, wh, s, as_of = ctx.spark, ctx.warehouse, ctx.settings.segmentation, ctx.as_of
    raw = _read_features(ctx)
    typical_gap = typical_gap_days(raw)
    features = with_fixed_segment(raw, typical_gap, s).persist(StorageLevel.MEMORY_AND_DISK)
    rows_in = features.count()
    if rows_in == 0:
        raise InputError(f"gold/customer_features has no rows for as_of {as_of.isoformat()}")
    eligible = features.where(F.col("fixed_segment_id").isNull())
    fixed = features.where(F.col("fixed_segment_id").isNotNull())
    previous_as_of = _previous_as_of(ctx)
    n_modelled = eligible.count()
    if n_modelled >= MIN_MODELLED:
        model, segment_map, selection, model_as_of = _model(
            ctx, eligible, _profiles_at(ctx, previous_as_of)
        )
        map_df = spark.createDataFrame(segment_map)
        scored = score(model, eligible)
    else:  # too few to cluster: one rule-based segment, no model
        log.warning(
            "segmentation: only %d active repeat customers, fewer than %d: no model is fitted; "
            "they form the segment %r",
            n_modelled, MIN_MODELLED, ACTIVE_LABEL,
        )  # fmt: skip
        fixed = features.withColumn(
            "fixed_segment_id", F.coalesce(F.col("fixed_segment_id"), F.lit(ACTIVE_ID))
        )
        segment_map = pd.DataFrame(columns=["cluster", "segment_id", "segment_label", *CENTROIDS])
        map_df = spark.createDataFrame([], MAP_SCHEMA)
        scored = spark.createDataFrame([], "customer_id string, cluster int, distance double")
        selection, model_as_of, model = [], as_of, None
    segments = customer_segments(scored, fixed, map_df, s.min_orders)
    written: dict[str, DataFrame] = {
        "customer_segments": segments,
        "segment_model_selection": spark.createDataFrame(selection, SELECTION_SCHEMA),
    }
    versions = {}
    for name, df in written.items():
        versions[f"gold/{name}"] = wh.write_slice(_with_run(df, ctx), "gold", name, as_of)
    segments = wh.read_as_of(spark, "gold", "customer_segments", as_of)
    profiles = segment_profiles(segments, features, map_df, len(segment_map), model_as_of)
    versions["gold/segment_profiles"] = wh.write_slice(
        _with_run(profiles, ctx), "gold", "segment_profiles", as_of
    )
    versions["gold/segment_migration"] = wh.write_slice(
        _with_run(_migration(ctx, segments, previous_as_of), ctx),
        "gold",
        "segment_migration",
        as_of,
    )
    features.unpersist()
    profiles_pd: pd.DataFrame = wh.read_as_of(spark, "gold", "segment_profiles", as_of).toPandas()
    no_model = (0, None, None, None, None, True, s.refit, as_of, None, n_modelled)
    chosen = next((r for r in selection if r[5]), no_model)
    summary = _summary(profiles_pd, chosen, selection)
    summary["typical_gap_days"] = None if typical_gap is None else round(typical_gap, 1)
    note = edge_note([int(r[0]) for r in selection if r[6]], int(chosen[0]), s)
    if note:
        log.warning("segmentation: %s", note)
        summary["k_at_edge"] = note
    summary["previous_as_of"] = previous_as_of.isoformat() if previous_as_of else None
    summary["share_shifts"] = _share_shifts(
        profiles_pd[["segment_id", "share"]],
        _profiles_at(ctx, previous_as_of),
        s.share_shift_alert,
    )
    log.info("segmentation %s: %s", as_of, summary)
    return StageResult(
        tables=versions,
        rows_in=rows_in,
        rows_out={"gold/customer_segments": rows_in, "gold/segment_profiles": len(profiles_pd)},
        summary=summary,
        models={"segmentation": model} if model is not None else {},
    )
