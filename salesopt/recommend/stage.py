"""Recommendation stage: evaluate on a time holdout, fit the production model, write gold.

Reads silver/order_lines (the holdout needs dated purchases), gold/interactions for `as_of`
(production training data; computed from the lines when the slice is absent), silver/products
(inactive products are never recommended) and, if present, gold/customer_segments for `as_of`
(cold-start popularity per segment). Writes gold/recommendations, gold/recommendation_metrics and,
with `recommend.grid`, gold/recommendation_grid. The production model and its id indexes are saved
under `<warehouse>/models/recommend/as_of=<date>/`.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from pyspark import StorageLevel
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt import features
from salesopt.context import StageContext, StageResult
from salesopt.errors import InputError
from salesopt.recommend import als, buy_again, evaluate, serve
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


def _depth(
    interactions: DataFrame, excluded: DataFrame | None, top_n: int, cap: int, n: int
) -> int:
    most = 0
    if excluded is not None:
        row = excluded.groupBy("customer_id").count().agg(F.max("count")).first()
        most = int(row[0]) if row and row[0] is not None else 0
    return max(top_n, min(n, top_n + most, cap))


def recommendations(
    ctx: StageContext, lines: DataFrame, interactions: DataFrame, products: DataFrame,
    segments: DataFrame | None,
) -> tuple[DataFrame, dict[str, Any]]:  # fmt: skip
    """Fits the production model on all interactions up to as_of and builds the top-N lists."""
    s, hl, as_of = ctx.settings.recommend, ctx.settings.features.recency_half_life_days, ctx.as_of
    users = als.index_ids(interactions, "customer_id", "user").persist(StorageLevel.MEMORY_AND_DISK)
    items = als.index_ids(interactions, "product_id", "item").persist(StorageLevel.MEMORY_AND_DISK)
    ratings = als.ratings(interactions, users, items, s.strength_transform).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    n_ratings, n_items = ratings.count(), items.count()
    model = als.fit(ratings, als.AlsParams.from_settings(s), s, als.n_blocks(n_ratings, s))
    path = model_path(ctx.warehouse.root, as_of)
    als.save(model, f"{path}/als")
    users.write.mode("overwrite").parquet(f"{path}/user_index")
    items.write.mode("overwrite").parquet(f"{path}/item_index")
    stats = buy_again.repurchase_stats(lines, as_of)
    categories = buy_again.repurchase_categories(
        stats, s.repurchase_categories, s.min_repurchase_rate
    )
    excluded = serve.excluded_pairs(interactions, categories) if s.exclude_bought else None
    depth = _depth(interactions, excluded, s.top_n, s.max_candidates, n_items)
    als_c = als.recommend(model, users, items, depth).select("customer_id", "product_id", "score")
    if excluded is not None:
        als_c = als_c.join(excluded, on=["customer_id", "product_id"], how="left_anti")
    if s.buy_again:
        ba_c = buy_again.buy_again_scores(
            interactions, stats, categories, as_of, s.holdout_days, hl
        )
        model_rows = buy_again.blend(als_c, ba_c, s.buy_again_weight)
    else:
        model_rows = als_c.withColumn("source", F.lit("als"))
    customers = interactions.select("customer_id")
    if segments is not None:
        customers = customers.unionByName(segments.select("customer_id"))
    if ctx.warehouse.exists(ctx.spark, "silver", "customers"):
        customers = customers.unionByName(
            ctx.warehouse.read(ctx.spark, "silver", "customers").select("customer_id")
        )
    customers = customers.distinct()
    popular = serve.segment_popularity(interactions, segments, depth)
    inactive = products.where(F.col("status") != "active").select("product_id")
    fresh = serve.new_product_candidates(interactions, products, items, as_of, s.new_product_days)
    recs = serve.assemble(
        model_rows, serve.popular_candidates(customers, popular, segments), fresh, excluded,
        inactive, s.top_n,
    )  # fmt: skip
    info = {"model_path": path, "train_pairs": n_ratings, "items_with_factors": n_items,
            "repurchase_categories": categories, "candidate_depth": depth}  # fmt: skip
    return recs, info


def _metrics_frame(
    ctx: StageContext, rows: list[dict[str, Any]], params: dict[str, Any]
) -> DataFrame:
    schema = (
        "model string, candidates string, metric string, k int, value double, n_customers long, "
        "rank int, reg_param double, alpha double, max_iter int, holdout_days int, "
        "cutoff_date string, excluded_pair_share double, excluded_customer_share double"
    )
    data = [{**params, **r} for r in rows]
    cols = [c.split()[0] for c in schema.split(", ")]
    df = ctx.spark.createDataFrame([tuple(d.get(c) for c in cols) for d in data], schema)
    return features.with_run(
        df.withColumn("cutoff_date", F.to_date("cutoff_date")), ctx.as_of, ctx.run_id
    )


def run(ctx: StageContext) -> StageResult:
    """Evaluates, fits, scores and writes the recommendation tables for `ctx.as_of`."""
    s, hl, wh = ctx.settings.recommend, ctx.settings.features.recency_half_life_days, ctx.warehouse
    ensure_checkpoint_dir(ctx.spark, ctx.settings.paths.checkpoint_dir)  # for ALS, wherever run
    lines, interactions, products, segments = _inputs(ctx)
    holdout = evaluate.prepare(lines, ctx.as_of, s, hl)
    rows = evaluate.evaluate(holdout, lines, s, hl)
    grid_rows = evaluate.grid(holdout, s) if s.grid else []
    evaluate.release(holdout)
    params = {"rank": s.rank, "reg_param": s.reg_param, "alpha": s.alpha, "max_iter": s.max_iter,
              "holdout_days": s.holdout_days, **holdout.counts}  # fmt: skip
    tables: dict[str, int | None] = {}
    tables["gold/recommendation_metrics"] = wh.write_slice(
        _metrics_frame(ctx, rows, params), "gold", "recommendation_metrics", ctx.as_of
    )
    if grid_rows:
        tables["gold/recommendation_grid"] = wh.write_slice(
            _metrics_frame(ctx, grid_rows, params), "gold", "recommendation_grid", ctx.as_of
        )
    recs, info = recommendations(ctx, lines, interactions, products, segments)
    out = features.with_run(recs, ctx.as_of, ctx.run_id)
    tables["gold/recommendations"] = wh.write_slice(out, "gold", "recommendations", ctx.as_of)
    written = wh.read_as_of(ctx.spark, "gold", "recommendations", ctx.as_of)
    by_source = {r["source"]: int(r["count"]) for r in written.groupBy("source").count().collect()}
    summary = _summary(rows, params, info, by_source, s.k)
    return StageResult(
        tables=tables,
        rows_in=info["train_pairs"],
        rows_out={
            "gold/recommendations": sum(by_source.values()),
            "gold/recommendation_metrics": len(rows),
        },
        summary=summary,
    )


def _summary(
    rows: list[dict[str, Any]], params: dict[str, Any], info: dict[str, Any],
    by_source: dict[str, int], k: int,
) -> dict[str, Any]:  # fmt: skip
    table: dict[str, dict[str, float]] = {}
    for r in rows:
        table.setdefault(f"{r['model']}/{r['candidates']}", {})[r["metric"]] = round(r["value"], 4)
    p_key = "precision_at_k"
    als_all, pop_all = (
        table.get("als/all", {}).get(p_key, 0.0),
        table.get("popular/all", {}).get(p_key, 0.0),
    )
    return {
        "k": k,
        "metrics": table,
        "als_vs_popular_precision_all": round(als_all / pop_all, 3) if pop_all else None,
        "split": {
            key: params[key]
            for key in params
            if key not in ("rank", "reg_param", "alpha", "max_iter")
        },
        "params": {key: params[key] for key in ("rank", "reg_param", "alpha", "max_iter")},
        "recommendations_by_source": by_source,
        **info,
    }
