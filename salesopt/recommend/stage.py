"""Recommendation stage: choose the served method on a validation window, report every method on
the holdout, fit at as_of and write gold (docs/recommendations.md).

Reads silver/order_lines (the evaluation needs dated purchases), gold/interactions for `as_of`
(production training data; computed from the lines when the slice is absent), silver/products
(inactive products are never recommended) and, if present, gold/customer_segments for `as_of`
(cold-start popularity per segment). Writes gold/recommendations, gold/recommendation_metrics and,
with `recommend.grid`, gold/recommendation_grid. When the served method uses ALS, the production
model and its id indexes are saved under `<warehouse>/models/recommend/as_of=<date>/`.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt import features
from salesopt.config import RecommendSettings
from salesopt.context import StageContext, StageResult
from salesopt.errors import InputError
from salesopt.recommend import als, evaluate, lists, split
from salesopt.session import ensure_checkpoint_dir

log = logging.getLogger(__name__)


def model_path(root: str, as_of: date) -> str:
    return f"{root}/models/recommend/as_of={as_of.isoformat()}"


def load_model(spark: SparkSession, path: str) -> tuple[ALSModel, DataFrame, DataFrame]:
    """The saved ALS model with its user and item indexes, ready for `als.recommend`."""
    users = spark.read.parquet(f"{path}/user_index")
    items = spark.read.parquet(f"{path}/item_index")
    return als.load(f"{path}/als"), users, items


def _inputs(ctx: StageContext) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame | None]:
    wh, spark, hl = ctx.warehouse, ctx.spark, ctx.settings.features.recency_half_life_days
    if not wh.exists(spark, "silver", "order_lines"):
        raise InputError(f"silver/order_lines not found at {wh.path('silver', 'order_lines')}")
    lines = wh.read(spark, "silver", "order_lines")
    if wh.exists(spark, "gold", "interactions"):
        interactions = wh.read_as_of(spark, "gold", "interactions", ctx.as_of).drop(
            "as_of", "run_id"
        )
    else:
        log.warning("gold/interactions missing: computing interactions from silver/order_lines")
        interactions = features.interactions(lines, ctx.as_of, hl)
    if wh.exists(spark, "silver", "products"):
        products = wh.read(spark, "silver", "products").select(
            "product_id", "category", "status", "launch_date"
        )
    else:
        log.warning("silver/products missing: every product with sales counts as active")
        products = interactions.groupBy("product_id").agg(
            F.first("category").alias("category"), F.lit("active").alias("status"),
            F.min("first_purchase_date").alias("launch_date"),
        )  # fmt: skip
    segments = None
    if wh.exists(spark, "gold", "customer_segments"):
        segments = wh.read_as_of(spark, "gold", "customer_segments", ctx.as_of).select(
            "customer_id", "segment_id"
        )
    return lines, interactions, products, segments


def choose(
    lines: DataFrame, catalogue: lists.Catalogue, cutoff: date, s: RecommendSettings,
    half_life: float,
) -> tuple[lists.Method, evaluate.Evaluation | None]:  # fmt: skip
    """The configured method, or with `method: auto` the best on the validation window (the
    `holdout_days` before `cutoff`; lists as served)."""
    if s.method != "auto":
        weight = s.buy_again_weight if s.method == "blend" else None
        return lists.Method(s.method, weight), None
    start = evaluate.validation_cutoff(cutoff, s.holdout_days)
    methods = evaluate.candidate_methods(s)
    new = [m for m in methods if m == evaluate.new_truth_proxy(m)]  # popular and als
    validation = evaluate.evaluate(
        "validation", lines, start, cutoff, methods, catalogue, s, half_life, new_methods=new
    )
    chosen = evaluate.select(validation.rows, methods, s.selection_tolerance)
    log.info("served method chosen on validation: %s", chosen.label)
    return chosen, validation


def holdout_methods(served: lists.Method) -> list[lists.Method]:
    """Every method but the blends, plus the served blend: what the holdout reports."""
    methods = [lists.Method(n) for n in lists.METHODS if n != "blend"]
    return [*methods, served] if served.name == "blend" else methods


def recommendations(
    ctx: StageContext, lines: DataFrame, interactions: DataFrame, catalogue: lists.Catalogue,
    method: lists.Method,
) -> tuple[DataFrame, dict[str, Any]]:  # fmt: skip
    """Fits on all interactions up to as_of and builds every customer's top-N list."""
    s, hl, as_of = ctx.settings.recommend, ctx.settings.features.recency_half_life_days, ctx.as_of
    fitted = lists.fit(
        lines, interactions, as_of, s, als.AlsParams.from_settings(s), with_als=method.uses_als
    )
    path = model_path(ctx.warehouse.root, as_of)
    if fitted.model is not None:
        als.save(fitted.model, f"{path}/als")
        fitted.users.write.mode("overwrite").parquet(f"{path}/user_index")
        fitted.items.write.mode("overwrite").parquet(f"{path}/item_index")
    customers = interactions.select("customer_id")
    if catalogue.segments is not None:
        customers = customers.unionByName(catalogue.segments.select("customer_id"))
    if ctx.warehouse.exists(ctx.spark, "silver", "customers"):
        customers = customers.unionByName(
            ctx.warehouse.read(ctx.spark, "silver", "customers").select("customer_id")
        )
    recs = lists.build(fitted, [method], customers.distinct(), catalogue, s, hl).drop("model")
    info = {"model_path": path if fitted.model is not None else None,
            "train_pairs": fitted.n_ratings, "items_with_factors": fitted.n_items,
            "repurchase_categories": fitted.categories, "model": fitted.model}  # fmt: skip
    return recs, info


METRICS_SCHEMA = (
    "split string, model string, blend_weight double, served boolean, candidates string, "
    "metric string, k int, value double, n_customers long, rank int, reg_param double, "
    "alpha double, max_iter int, holdout_days int, cutoff_date string, "
    "excluded_pair_share double, excluded_customer_share double"
)


def _metrics_frame(
    ctx: StageContext, evaluations: list[evaluate.Evaluation], served: lists.Method | None,
    params: dict[str, Any],
) -> DataFrame:  # fmt: skip
    cols = [c.split()[0] for c in METRICS_SCHEMA.split(", ")]
    data = []
    for e in evaluations:
        for r in e.rows:
            is_served = served == lists.Method(r["model"], r["blend_weight"])
            row = {**params, **e.counts, **r, "served": is_served}
            data.append(tuple(row.get(c) for c in cols))
    df = ctx.spark.createDataFrame(data, METRICS_SCHEMA)
    return features.with_run(
        df.withColumn("cutoff_date", F.to_date("cutoff_date")), ctx.as_of, ctx.run_id
    )


def grid(
    ctx: StageContext, lines: DataFrame, catalogue: lists.Catalogue, cutoff: date
) -> list[evaluate.Evaluation]:
    """ALS alone for every (rank, reg_param, alpha) of the grid, on the validation window."""
    s, hl = ctx.settings.recommend, ctx.settings.features.recency_half_life_days
    start = evaluate.validation_cutoff(cutoff, s.holdout_days)
    out = []
    for rank in s.grid_ranks:
        for reg in s.grid_reg_params:
            for alpha in s.grid_alphas:
                params = als.AlsParams(rank=rank, reg_param=reg, alpha=alpha, max_iter=s.max_iter)
                e = evaluate.evaluate(
                    "validation", lines, start, cutoff, [lists.Method("als")], catalogue, s, hl,
                    params, new_methods=[],
                )  # fmt: skip
                for r in e.rows:
                    r.update(rank=rank, reg_param=reg, alpha=alpha)
                out.append(e)
    return out


def run(ctx: StageContext) -> StageResult:
    """Chooses the served method, evaluates, fits, scores and writes the recommendation tables."""
    s, hl, wh = ctx.settings.recommend, ctx.settings.features.recency_half_life_days, ctx.warehouse
    ensure_checkpoint_dir(ctx.spark, ctx.settings.paths.checkpoint_dir)  # for ALS, wherever run
    lines, interactions, products, segments = _inputs(ctx)
    catalogue = lists.Catalogue(products, segments)
    cutoff = split.cutoff_date(ctx.as_of, s.holdout_days)
    method, validation = choose(lines, catalogue, cutoff, s, hl)
    holdout = evaluate.evaluate(
        "holdout", lines, cutoff, ctx.as_of, holdout_methods(method), catalogue, s, hl
    )
    evaluations = [e for e in (validation, holdout) if e is not None]
    params = {"rank": s.rank, "reg_param": s.reg_param, "alpha": s.alpha, "max_iter": s.max_iter,
              "holdout_days": s.holdout_days}  # fmt: skip
    tables: dict[str, int | None] = {}
    tables["gold/recommendation_metrics"] = wh.write_slice(
        _metrics_frame(ctx, evaluations, method, params), "gold", "recommendation_metrics",
        ctx.as_of,
    )  # fmt: skip
    if s.grid:
        tables["gold/recommendation_grid"] = wh.write_slice(
            _metrics_frame(ctx, grid(ctx, lines, catalogue, cutoff), None, params), "gold",
            "recommendation_grid", ctx.as_of,
        )  # fmt: skip
    recs, info = recommendations(ctx, lines, interactions, catalogue, method)
    model = info.pop("model")
    out = features.with_run(recs, ctx.as_of, ctx.run_id)
    tables["gold/recommendations"] = wh.write_slice(out, "gold", "recommendations", ctx.as_of)
    written = wh.read_as_of(ctx.spark, "gold", "recommendations", ctx.as_of)
    by_source = {r["source"]: int(r["count"]) for r in written.groupBy("source").count().collect()}
    summary = _summary(holdout, validation, method, s, info, by_source)
    return StageResult(
        tables=tables,
        rows_in=info["train_pairs"],
        rows_out={
            "gold/recommendations": sum(by_source.values()),
            "gold/recommendation_metrics": sum(len(e.rows) for e in evaluations),
        },
        summary=summary,
        models={"als": model} if model is not None else {},
    )


def _summary(
    holdout: evaluate.Evaluation, validation: evaluate.Evaluation | None, method: lists.Method,
    s: RecommendSettings, info: dict[str, Any], by_source: dict[str, int],
) -> dict[str, Any]:  # fmt: skip
    p = holdout.precision()
    baseline = evaluate.best_baseline(p)
    served, best = p.get(method.label, 0.0), p.get(baseline, 0.0)
    n = int(holdout.counts["evaluated_customers"])
    out: dict[str, Any] = {
        "k": s.k,
        "served_method": method.label,
        "chosen_on": "validation" if validation is not None else "config",
        "served_precision_at_k": round(served, 4),
        "best_baseline": baseline,
        "best_baseline_precision_at_k": round(best, 4),
        "served_vs_best_baseline": round(served / best, 3) if best else None,
        "evaluated_customers": n,
        "holdout_precision_at_k": {key: round(v, 4) for key, v in sorted(p.items())},
        "split": holdout.counts,
        "recommendations_by_source": by_source,
        **info,
    }
    if validation is not None:
        out["validation_precision_at_k"] = {
            key: round(v, 4) for key, v in sorted(validation.precision().items())
        }
    if n < s.min_evaluated_customers:
        out["warning"] = (
            f"only {n} customers evaluated (fewer than recommend.min_evaluated_customers = "
            f"{s.min_evaluated_customers}): the comparison with the baselines is noisy"
        )
        log.warning(out["warning"])
    return out
