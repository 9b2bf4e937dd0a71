"""Elasticity recovery at scale: estimated vs. planted elasticities on generated data.

    python -m bench elasticity --customers 20000 --products 200 --days 540
    python -m bench elasticity --no-trend          # an ablation on the same data

Takes the generator's clean order lines (`planted_lines`: dirty_rate 0, 12 stores, promotion
ids) and its planted products, without writing landing files; builds the location-week
observations and store traffic the decisions stage builds, fans the per-product regression out
with applyInPandas, and compares the raw estimates (before shrinkage) with the planted
elasticities (ablations: --no-traffic without the store-traffic control, --no-trend without the
linear trend). Reports the median absolute relative error over products with status ok (the
estimator's own rule for "enough price variation"), by volume and by planted price-volatility
tercile, how the planted stable-price products were classified, and the fit time. Target:
median error <= 20 %.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import functions as F

from bench.common import LOCAL_CONF, Row, add_json_option, report, status
from salesopt.config import GenerateSettings, load_settings
from salesopt.datagen import last_day, planted_lines
from salesopt.datagen.entities import products_frame
from salesopt.optimize.elasticity import (
    ElasticityParams,
    elasticity_observations,
    estimate_elasticities,
    location_traffic,
)
from salesopt.session import get_spark

ERROR_TARGET = 0.2  # median |estimate - planted| / |planted| over products with status ok


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark elasticity recovery on generated data")
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--products", type=int, default=200)
    p.add_argument("--days", type=int, default=540)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument(
        "--no-traffic", action="store_true", help="ablation: drop the store-traffic control"
    )
    p.add_argument("--no-trend", action="store_true", help="ablation: drop the linear trend")
    p.add_argument("--conf", type=Path, default=LOCAL_CONF)
    add_json_option(p)
    return p.parse_args(argv)


def summarise(frame: pd.DataFrame) -> dict[str, object]:
    ok = frame[frame["status"] == "ok"].copy()
    ok["rel_error"] = (ok["elasticity"] - ok["planted"]).abs() / ok["planted"].abs()
    ok["tercile"] = pd.qcut(ok["base_demand"], 3, labels=["low", "mid", "high"])
    by_tercile = ok.groupby("tercile", observed=True).agg(
        products=("rel_error", "size"),
        median_rel_error=("rel_error", "median"),
        median_units_per_day=("base_demand", "median"),
    )
    ok["volatility"] = pd.qcut(ok["price_volatility"], 3, labels=["low", "mid", "high"])
    by_volatility = ok.groupby("volatility", observed=True).agg(
        products=("rel_error", "size"),
        median_rel_error=("rel_error", "median"),
        median_price_volatility=("price_volatility", "median"),
    )
    stable = frame["price_volatility"] <= 0.02
    return {
        "products": len(frame),
        "status_counts": frame["status"].value_counts().to_dict(),
        "planted_stable_price_products": int(stable.sum()),
        "stable_price_products_by_status": frame.loc[stable, "status"].value_counts().to_dict(),
        "median_rel_error": round(float(ok["rel_error"].median()), 4),
        "share_within_20pct": round(float((ok["rel_error"] <= 0.2).mean()), 4),
        "mean_error": round(float((ok["elasticity"] - ok["planted"]).mean()), 4),
        "median_std_error": round(float(ok["std_error"].median()), 4),
        "by_volume_tercile": {
            str(k): {c: round(float(v), 4) for c, v in row.items()}
            for k, row in by_tercile.iterrows()
        },
        "by_price_volatility_tercile": {
            str(k): {c: round(float(v), 4) for c, v in row.items()}
            for k, row in by_volatility.iterrows()
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = load_settings(args.conf if args.conf.exists() else None)
    spark = get_spark(settings.spark)
    gen = GenerateSettings(
        customers=args.customers, products=args.products, days=args.days,
        start_date=date(2024, 1, 1), seed=args.seed, dirty_rate=0.0,
    )  # fmt: skip
    started = time.perf_counter()
    # the generated clean lines (store_id and promo included), kept for the three reads below
    lines = planted_lines(spark, gen).persist(StorageLevel.MEMORY_AND_DISK)
    n_lines = lines.count()
    lines_s = time.perf_counter() - started
    started = time.perf_counter()
    obs = elasticity_observations(lines, last_day(gen), history_days=730)
    traffic = None if args.no_traffic else location_traffic(lines, last_day(gen), 730)
    params = ElasticityParams(
        min_obs=40, min_price_cv=0.02, min_distinct_prices=3, trend=not args.no_trend
    )
    estimates = pd.DataFrame(
        estimate_elasticities(obs, params, args.partitions, traffic).toPandas()
    ).rename(columns={"elasticity_raw": "elasticity", "std_error_raw": "std_error"})
    fit_s = time.perf_counter() - started
    base_demand = lines.groupBy("product_id").agg(
        (F.sum("quantity") / F.countDistinct("order_date")).alias("base_demand")
    )
    planted = (
        products_frame(spark, gen.seed, gen.products, gen.days)
        .join(base_demand, "product_id", "left")
        .select("product_id", F.col("elasticity").alias("planted"), "price_volatility",
                F.coalesce("base_demand", F.lit(0.0)).alias("base_demand"))
        .toPandas()
    )  # fmt: skip
    lines.unpersist()
    frame = estimates.merge(planted, on="product_id")
    result = {
        "generate": {"customers": gen.customers, "products": gen.products, "days": gen.days,
                     "seed": gen.seed},
        "lines": n_lines,
        "traffic_control": not args.no_traffic,
        "trend": not args.no_trend,
        "lines_seconds": round(lines_s, 1),
        "fit_seconds": round(fit_s, 1),
        **summarise(frame),
    }  # fmt: skip
    title = f"elasticity bench: {gen.customers:,} x {gen.products:,} x {gen.days} days"
    report("elasticity", title, figures(result), result, args.json)
    return 0


def figures(r: dict[str, Any]) -> list[Row]:
    """The printed table: median relative error over `ok` products (target) and the rest."""
    error = r["median_rel_error"]
    statuses = ", ".join(f"{k} {v}" for k, v in r["status_counts"].items())
    return [
        (
            "median relative error",
            f"{error:.4f}",
            f"<= {ERROR_TARGET:g}",
            status(error, ERROR_TARGET),
        ),
        ("share within 20 %", f"{r['share_within_20pct']:.4f}", "", ""),
        ("products by status", statuses, "", ""),
        ("fit (s)", f"{r['fit_seconds']:.1f}", "", ""),
    ]
