"""ALS training time per iteration and top-N scoring time for all customers, measured.

    python -m bench recommend --customers 500000 --products 20000 --interactions 20000000
    python -m bench recommend --quality --customers 20000 --products 1000

Interactions are synthesised directly in Spark (no order lines): each draw picks a customer
uniformly, one of the customer's two favourite latent groups (80%) or any group, and a product in
that group with a popularity skew; duplicate (customer, product) draws add up to the strength.
Ids are already dense integers, so no indexing is timed. Per-iteration time is
(fit(max_iter) - fit(1)) / (max_iter - 1) after one warm-up fit, which removes the fixed cost
of building blocks.
Scoring is `recommendForAllUsers(top_n)` written to the `noop` sink: nothing reaches the driver.
With `--quality` it instead runs the holdout evaluation (all models, both candidate sets) on
generated order lines with planted tastes (target: ALS precision@10 >= 2x popularity's).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.common import LOCAL_CONF, Row, add_json_option, report, status
from salesopt.config import Settings, load_settings
from salesopt.datagen import last_day, planted_lines
from salesopt.recommend import als, evaluate
from salesopt.session import get_spark

GROUPS = 50
ALS_OVER_POPULAR_TARGET = 2.0  # precision@10 of ALS over popularity's, all products


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark implicit ALS fit and top-N scoring")
    p.add_argument("--customers", type=int, default=500_000)
    p.add_argument("--products", type=int, default=20_000)
    p.add_argument("--interactions", type=int, default=20_000_000)
    p.add_argument("--max-iter", type=int, default=5)
    p.add_argument("--top-n", type=int, default=10)
    p.add_argument("--conf", type=Path, default=LOCAL_CONF)
    p.add_argument(
        "--quality",
        action="store_true",
        help="holdout metrics on generated order lines (--customers, --products, 400 days)",
    )
    add_json_option(p)
    return p.parse_args(argv)


def synth_ratings(spark: SparkSession, customers: int, products: int, draws: int) -> DataFrame:
    """Synthetic implicit ratings. Grain: one row per (user, item)."""
    per_group = max(1, products // GROUPS)
    u = lambda salt: F.pmod(F.xxhash64(F.lit(salt), "id"), F.lit(1 << 30)) / float(1 << 30)  # noqa: E731
    user = F.pmod(F.xxhash64(F.lit(1), "id"), F.lit(customers)).cast("int")
    fav = F.pmod(F.xxhash64(F.lit(2), user) + F.when(u(3) < 0.5, 0).otherwise(1), F.lit(GROUPS))
    group = F.when(u(4) < 0.8, fav).otherwise(F.floor(u(5) * GROUPS)).cast("int")
    rank = F.least(F.floor(F.pow(u(6), F.lit(2.0)) * per_group), F.lit(per_group - 1)).cast("int")
    item = F.pmod(group + rank * GROUPS, F.lit(products)).cast("int")
    return (
        spark.range(draws)
        .select(user.alias("user"), item.alias("item"))
        .groupBy("user", "item")
        .agg(F.log1p(F.count(F.lit(1)).cast("float")).cast("float").alias("rating"))
    )


def quality(spark: SparkSession, settings: Settings, customers: int, products: int) -> dict:
    """Holdout metrics of every model on generated lines with planted tastes."""
    gen = settings.generate.model_copy(
        update={"customers": customers, "products": products, "days": 400,
                "start_date": date(2024, 1, 1)}
    )  # fmt: skip
    as_of = last_day(gen)
    lines = planted_lines(spark, gen).persist(StorageLevel.MEMORY_AND_DISK)
    started = time.perf_counter()
    half_life = settings.features.recency_half_life_days
    holdout = evaluate.prepare(lines, as_of, settings.recommend, half_life)
    rows = evaluate.evaluate(holdout, lines, settings.recommend, half_life)
    table: dict[str, dict[str, float]] = {}
    for r in rows:
        table.setdefault(f"{r['model']}/{r['candidates']}", {})[r["metric"]] = round(r["value"], 4)
    return {
        "mode": "quality", "customers": customers, "products": products, "as_of": str(as_of),
        "lines": lines.count(), **holdout.counts, "metrics": table,
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = load_settings(args.conf) if args.conf.exists() else load_settings()
    spark = get_spark(settings.spark)
    if args.quality:
        measured = quality(spark, settings, args.customers, args.products)
        title = f"recommend bench, holdout quality: {args.customers:,} x {args.products:,}"
        report("recommend", title, quality_figures(measured), measured, args.json)
        return 0
    started = time.perf_counter()
    ratings = synth_ratings(spark, args.customers, args.products, args.interactions).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    n_ratings = ratings.count()
    synth_s = time.perf_counter() - started
    s = settings.recommend.model_copy(update={"checkpoint_interval": -1})
    blocks = als.n_blocks(n_ratings, s)
    fits = {}
    for iters in (1, 1, args.max_iter):  # the first 1-iteration fit warms up the JVM
        params = als.AlsParams(rank=s.rank, reg_param=s.reg_param, alpha=s.alpha, max_iter=iters)
        t0 = time.perf_counter()
        model = als.fit(ratings, params, s, blocks)
        model.userFactors.write.format("noop").mode("overwrite").save()
        fits[iters] = time.perf_counter() - t0
    per_iter = (fits[args.max_iter] - fits[1]) / max(1, args.max_iter - 1)
    t0 = time.perf_counter()
    model.recommendForAllUsers(args.top_n).write.format("noop").mode("overwrite").save()
    score_s = time.perf_counter() - t0
    result: dict[str, object] = {
        "customers": args.customers, "products": args.products, "draws": args.interactions,
        "ratings": n_ratings, "rank": s.rank, "blocks": blocks, "max_iter": args.max_iter,
        "master": spark.conf.get("spark.master", "?"), "synth_s": round(synth_s, 1),
        "fit_1_iter_s": round(fits[1], 1),
        f"fit_{args.max_iter}_iter_s": round(fits[args.max_iter], 1),
        "seconds_per_iteration": round(per_iter, 1), "top_n": args.top_n,
        "score_all_customers_s": round(score_s, 1),
    }  # fmt: skip
    title = f"recommend bench: {n_ratings:,} ratings, {args.customers:,} x {args.products:,}"
    report("recommend", title, timing_figures(result, args.max_iter), result, args.json)
    return 0


def timing_figures(r: dict[str, Any], max_iter: int) -> list[Row]:
    """The printed table of the timing mode (no target: measured for sizing)."""
    return [
        ("fit, 1 iteration (s)", f"{r['fit_1_iter_s']:.1f}", "", ""),
        (f"fit, {max_iter} iterations (s)", f"{r[f'fit_{max_iter}_iter_s']:.1f}", "", ""),
        ("seconds per iteration", f"{r['seconds_per_iteration']:.1f}", "", ""),
        (f"top-{r['top_n']} for all customers (s)", f"{r['score_all_customers_s']:.1f}", "", ""),
    ]


def quality_figures(r: dict[str, Any]) -> list[Row]:
    """The printed table of the quality mode: precision@10 per model, ALS over popularity."""
    metrics = r["metrics"]
    rows: list[Row] = [
        (f"precision@k, {name}", f"{m['precision_at_k']:.4f}", "", "")
        for name, m in metrics.items()
    ]
    ratio = metrics["als/all"]["precision_at_k"] / max(
        metrics["popular/all"]["precision_at_k"], 1e-9
    )
    rows.append(("ALS / popularity, precision@k, all products", f"{ratio:.2f}",
                 f">= {ALS_OVER_POPULAR_TARGET:g}",
                 status(ratio, ALS_OVER_POPULAR_TARGET, higher_is_better=True)))  # fmt: skip
    return rows
