"""Segmentation at scale: wall time of the stage with the k sweep, time and cost per k, ARI.

    python -m bench segment --customers 1000000

gold/customer_features is synthesised directly in Spark from the planted customers
(`datagen.entities.customers_frame`: segment, orders per week, lines per order, active window)
without generating order lines: orders n = round(lam + sqrt(lam) * N(0,1)) with
lam = orders_per_week / 7 * active days (as the generator does); first and last order days are
the min and max of n uniform days in the active window (drawn as start + span * (1 - u^(1/n))
and start + span * v^(1/n)); a basket is lines_per_order * 6.5 * exp(0.3 N(0,1)) in money.
Customers with no order are dropped, as in the real table. Every draw is a hash of (seed, salt,
customer), so the frame is the same on every run.

Measured: the stage's wall time (sweep k_min..k_max, fit + silhouette per k, all four tables
written), the seconds and cost per k from gold/segment_model_selection, the ARI of the written
segments against the planted ones, and the ARI between two runs with different
`segmentation.seed` (stability; second run at the chosen k). Targets: planted lapsed customers
labelled `lapsed` >= 0.95 (recall); ARI among the customers the model segments (active repeat
customers) against their planted segments >= 0.85. Context: the ARI over every customer
(lifecycle segments as their own clusters) and the share of planted champions and loyal
customers called at risk or lapsed.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.common import LOCAL_CONF, Row, add_json_option, report, status
from salesopt import features
from salesopt.config import Settings, load_settings
from salesopt.context import StageContext
from salesopt.datagen.entities import customers_frame, normal, uniform
from salesopt.io.tables import Warehouse
from salesopt.segment import stage as segment
from salesopt.segment.labels import AT_RISK_ID, LAPSED_ID, adjusted_rand_index
from salesopt.session import get_spark

DAYS = 540
AS_OF = date(2025, 6, 30)
LINE_VALUE = 6.5
ARI_TARGET = 0.85  # adjusted Rand index among modelled customers against their planted segments
LAPSED_TARGET = 0.95  # share of planted lapsed customers labelled lapsed
CHURN = [LAPSED_ID, AT_RISK_ID]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark the segmentation stage with its k sweep")
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--conf", type=Path, default=LOCAL_CONF)
    p.add_argument("--no-stability", action="store_true", help="skip the second-seed run")
    add_json_option(p)
    return p.parse_args(argv)


def synth_features(spark: SparkSession, customers: int, seed: int) -> DataFrame:
    """gold/customer_features-like frame sampled from the planted segments. Grain: customer."""
    planted = customers_frame(spark, seed, customers, 200, DAYS)
    span = (F.col("active_end") - F.col("active_start")).cast("double")
    lam = F.col("orders_per_week") / 7.0 * span
    n = F.greatest(F.lit(0), F.round(lam + F.sqrt(lam) * normal(seed, 60, "cid")).cast("int"))
    first = F.col("active_start") + F.floor(
        span * (1 - F.pow(uniform(seed, 90, "cid"), 1 / F.col("n")))
    )
    last = F.col("active_start") + F.floor(span * F.pow(uniform(seed, 91, "cid"), 1 / F.col("n")))
    basket = F.col("lines_per_order") * LINE_VALUE * F.exp(0.3 * normal(seed, 92, "cid"))
    return (
        planted.withColumn("n", n)
        .where(F.col("n") > 0)
        .withColumn("first_day", F.least(first, F.lit(DAYS - 1)).cast("int"))
        .withColumn("last_day", F.least(F.greatest(last, F.col("first_day")), F.lit(DAYS - 1)))
        .withColumn(
            "last_day", F.when(F.col("n") == 1, F.col("first_day")).otherwise(F.col("last_day"))
        )
        .select(
            "customer_id",
            "segment",
            (F.lit(DAYS - 1) - F.col("last_day")).cast("int").alias("recency_days"),
            F.col("n").cast("long").alias("frequency"),
            F.round(F.col("n") * basket, 2).alias("monetary"),
            (F.lit(DAYS - 1) - F.col("first_day")).cast("int").alias("tenure_days"),
            F.round(basket, 4).alias("avg_basket"),
            F.greatest(F.lit(1.0), F.round(F.col("lines_per_order"), 2)).alias(
                "avg_lines_per_order"
            ),
            F.lit(0.0).alias("return_rate"),
        )
        .withColumn(
            "orders_per_week",
            F.col("frequency") / F.greatest(F.col("tenure_days"), F.lit(7)) * 7.0,
        )
        .withColumn("first_order_date", F.date_sub(F.lit(AS_OF), F.col("tenure_days")))
        .withColumn("last_order_date", F.date_sub(F.lit(AS_OF), F.col("recency_days")))
        .withColumn("top_category", F.lit(None).cast("string"))
        .withColumn("category_mix", F.create_map().cast("map<string,double>"))
    )


def _run(spark: SparkSession, settings: Settings, run_id: str) -> tuple[float, dict]:
    ctx = StageContext(spark, settings, Warehouse.from_settings(settings), AS_OF, run_id)
    started = time.perf_counter()
    result = segment.run(ctx)
    return time.perf_counter() - started, result.summary


def _stability(
    spark: SparkSession, settings: Settings, root: str, k: int, first: pd.DataFrame
) -> dict[str, float]:
    """Second run with the next seed at the chosen k; ARI between the two runs' segment ids."""
    other = settings.with_overrides(
        segmentation={"seed": settings.segmentation.seed + 1, "k": k},
        paths={"warehouse": f"{root}/warehouse2"},
    )
    source = Warehouse.from_settings(settings).read_as_of(spark, "gold", "customer_features", AS_OF)
    other_wh = Warehouse.from_settings(other)
    other_wh.write_slice(source, "gold", "customer_features", AS_OF)
    seconds, _ = _run(spark, other, "bench-2")
    second = other_wh.read_as_of(spark, "gold", "customer_segments", AS_OF)
    both = first.merge(
        second.select("customer_id", F.col("segment_id").alias("other")).toPandas(),
        on="customer_id",
        how="inner",
    )
    ari = adjusted_rand_index(both["segment_id"], both["other"])
    return {"seconds": round(seconds, 1), "ari_between_seeds": round(ari, 4)}


def _measure(spark: SparkSession, settings: Settings, root: str, args: argparse.Namespace) -> dict:
    wh = Warehouse.from_settings(settings)
    started = time.perf_counter()
    frame = synth_features(spark, args.customers, args.seed).cache()
    written = features.with_run(frame.drop("segment"), AS_OF, "bench")  # as the gold stage does
    wh.write_slice(written, "gold", "customer_features", AS_OF)
    synth_s = time.perf_counter() - started
    stage_s, summary = _run(spark, settings, "bench-1")
    segments = wh.read_as_of(spark, "gold", "customer_segments", AS_OF)
    truth = frame  # the planted segment of each customer (not a column of the table)
    joined: pd.DataFrame = (
        truth.select("customer_id", "segment")
        .join(segments.select("customer_id", "segment_id"), on="customer_id", how="inner")
        .toPandas()
    )
    selection = wh.read_as_of(spark, "gold", "segment_model_selection", AS_OF)
    rows: list[dict[Any, Any]] = selection.orderBy("k").toPandas().to_dict("records")
    per_k = [
        {"k": int(r["k"]), "seconds": float(r["seconds"]), "cost": round(float(r["cost"]), 1),
         "silhouette": round(float(r["silhouette"]), 4), "iterations": int(r["iterations"])}
        for r in rows
    ]  # fmt: skip
    return {
        "customers": len(joined),
        "synthesise_and_write_features_s": round(synth_s, 1),
        "stage_wall_s": round(stage_s, 1),
        "chosen_k": summary["k"],
        "silhouette": summary["silhouette"],
        "per_k": per_k,
        "sweep_s": round(sum(p["seconds"] for p in per_k), 1),
        "ari_vs_planted": round(adjusted_rand_index(joined["segment"], joined["segment_id"]), 4),
        **lifecycle_recovery(joined),
        "stability": None
        if args.no_stability
        else _stability(spark, settings, root, summary["k"], joined),
        "segments": summary["segments"],
    }


def lifecycle_recovery(joined: pd.DataFrame) -> dict[str, float]:
    """Planted lapsed found, steady buyers flagged, and the ARI among modelled customers."""
    lapsed = joined[joined["segment"] == "lapsed"]
    steady = joined[joined["segment"].isin(["champions", "loyal"])]
    modelled = joined[joined["segment_id"] >= 0]
    return {
        "lapsed_recall": round(float((lapsed["segment_id"] == LAPSED_ID).mean()), 4),
        "steady_flagged": round(
            float(steady["segment_id"].isin([LAPSED_ID, AT_RISK_ID]).mean()), 4
        ),
        "ari_modelled": round(adjusted_rand_index(modelled["segment"], modelled["segment_id"]), 4),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    root = tempfile.mkdtemp(prefix="salesopt-bench-segment-")
    settings = load_settings(args.conf).with_overrides(paths={"warehouse": f"{root}/warehouse"})
    spark = get_spark(settings.spark)
    try:
        numbers = _measure(spark, settings, root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    spark_used = {"master": settings.spark.master, "driver_memory": settings.spark.driver_memory}
    results = {**numbers, "spark": spark_used}
    title = f"segment bench: {numbers['customers']:,} customers with an order"
    report("segment", title, figures(results), results, args.json)
    return 0


def figures(r: dict[str, Any]) -> list[Row]:
    """The printed table: ARI against the planted segments (target), the sweep's times."""
    per_k = ", ".join(f"{p['k']}: {p['seconds']:.1f}" for p in r["per_k"])
    rows: list[Row] = [
        ("planted lapsed labelled lapsed", f"{r['lapsed_recall']:.4f}", f">= {LAPSED_TARGET:g}",
         status(r["lapsed_recall"], LAPSED_TARGET, higher_is_better=True)),
        ("ARI among modelled customers", f"{r['ari_modelled']:.4f}", f">= {ARI_TARGET:g}",
         status(r["ari_modelled"], ARI_TARGET, higher_is_better=True)),
        ("ARI over every customer", f"{r['ari_vs_planted']:.4f}", "", ""),
        ("champions and loyal called at risk or lapsed", f"{r['steady_flagged']:.4f}", "", ""),
        ("chosen k", str(r["chosen_k"]), "", ""),
        ("silhouette", f"{r['silhouette']:.4f}", "", ""),
        ("stage wall (s)", f"{r['stage_wall_s']:.1f}", "", ""),
        ("sweep (s)", f"{r['sweep_s']:.1f} (per k {per_k})", "", ""),
    ]  # fmt: skip
    if r["stability"] is not None:
        rows.append(("ARI between seeds", f"{r['stability']['ari_between_seeds']:.4f}", "", ""))
    return rows
