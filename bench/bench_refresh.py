"""Full refresh against the plain Spark floor, and the next day's refresh against the full one.

    python -m bench refresh --customers 11200 --products 2000     # about 1 M generated lines
    python -m bench refresh --customers 112000 --products 2000    # about 10 M generated lines

In one run, in one Spark session:

1. `generate` writes the landing files (skipped with `--reuse-landing --workdir DIR`).
2. Full refresh (ingest -> silver -> gold) of every file delivered up to
   `as_of - hold_days - 1` into an empty warehouse, with each stage's seconds.
3. Next-day refresh, as the next daily run of a long-lived session: the session's cache of
   compiled code is emptied (`bench.common.clear_codegen_cache`), the previous day's refresh runs
   untimed, then the refresh for the last generated day is timed (the last `hold_days` days of
   files). `--incremental-runs` times (median reported); each later run starts from its own copy
   of the warehouse as the full refresh left it. Target: <= 0.25 of the full refresh.
4. The Spark floor: the cheapest Spark program that produces the same weekly sales from the same
   files (`spark_weekly`: fixed-schema JSON read, the validity filters, latest version per
   line by a window, a broadcast join with products, the weekly aggregate written as parquet;
   no Delta, quarantine, PII hashing, quality rules or snapshots). Target: the full refresh
   within 4x of it.
5. DuckDB (threads = cores) running the same query on the same files, as a reference.
"""

from __future__ import annotations

import argparse
import glob
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    LOCAL_CONF,
    Row,
    Timer,
    add_json_option,
    clear_codegen_cache,
    report,
    status,
)
from salesopt.config import Settings, load_settings
from salesopt.datagen import GenerateSummary, generate, last_day
from salesopt.pipeline import WAREHOUSE_STAGES as CORE
from salesopt.pipeline import refresh
from salesopt.session import get_spark
from salesopt.summary import RunSummary

FLOOR_TARGET = 4.0  # full refresh seconds over the Spark floor's
NEXT_DAY_TARGET = 0.25  # next-day refresh seconds over the full refresh's


def _progress(message: str) -> None:
    """One line on stderr per bench step (the refresh itself logs at the configured level)."""
    print(f"bench refresh: {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=112_000)
    p.add_argument("--products", type=int, default=2_000)
    p.add_argument("--days", type=int, default=540)
    p.add_argument("--hold-days", type=int, default=5, help="days held back for the next day")
    p.add_argument("--dirty-rate", type=float, default=0.02)
    p.add_argument("--conf", type=Path, default=LOCAL_CONF)
    p.add_argument("--workdir", type=Path, default=None, help="default: a temp folder, removed")
    p.add_argument(
        "--reuse-landing", action="store_true",
        help="use the landing files already in --workdir (same generation options) and rebuild "
        "the warehouse from scratch",
    )  # fmt: skip
    p.add_argument(
        "--incremental-runs", type=int, default=3,
        help="next-day refreshes from the same starting state (median reported; default 3)",
    )  # fmt: skip
    p.add_argument("--skip-duckdb", action="store_true", help="no DuckDB reference")
    add_json_option(p)
    args = p.parse_args(argv)
    if args.incremental_runs < 1:
        p.error("--incremental-runs must be at least 1")
    if args.reuse_landing and args.workdir is None:
        p.error("--reuse-landing needs --workdir")
    return args


def empty_warehouse(path: Path) -> bool:
    """Removes a warehouse an earlier bench left in the workdir; True if there was one.

    The generator names its files afresh, so a full refresh on an earlier bench's warehouse would
    ingest every line again as a re-sent duplicate and time a different job.
    """
    if not path.exists():
        return False
    shutil.rmtree(path)
    return True


def incremental_results(full_seconds: float, runs: Sequence[float]) -> dict[str, Any]:
    """The next-day runs' seconds, their median and the median's ratio to the full refresh."""
    if not runs:
        raise ValueError("no incremental run to report")
    median = statistics.median(runs)
    return {
        "incremental_runs_seconds": [round(s, 3) for s in runs],
        "incremental_seconds": round(median, 3),
        "incremental_over_full": round(median / full_seconds, 4),
    }


DUCKDB_SQL = """
COPY (
  WITH raw AS (
    SELECT * FROM read_json(?, format='newline_delimited', ignore_errors=true, columns={
      order_id: 'VARCHAR', line_no: 'INTEGER', customer_id: 'VARCHAR', product_id: 'VARCHAR',
      quantity: 'INTEGER', unit_price: 'DOUBLE', discount: 'DOUBLE', order_ts: 'TIMESTAMP',
      updated_at: 'TIMESTAMP', status: 'VARCHAR'})
  ), valid AS (
    SELECT * FROM raw
    WHERE order_id IS NOT NULL AND line_no IS NOT NULL AND customer_id IS NOT NULL
      AND product_id IS NOT NULL AND quantity IS NOT NULL AND quantity <> 0
      AND unit_price > 0 AND order_ts IS NOT NULL AND order_ts <= ?::TIMESTAMP
  ), latest AS (
    SELECT * FROM valid
    QUALIFY row_number() OVER (PARTITION BY order_id, line_no
                               ORDER BY coalesce(updated_at, order_ts) DESC) = 1
  ), products AS (
    SELECT product_id, category FROM read_csv(?, header=true)
  )
  SELECT l.product_id, p.category, date_trunc('week', l.order_ts)::DATE AS week_start,
         sum(CASE WHEN l.status = 'cancelled' THEN 0 ELSE l.quantity END) AS units,
         sum(CASE WHEN l.status = 'cancelled' THEN 0
                  ELSE l.quantity * l.unit_price - coalesce(l.discount, 0) END) AS revenue,
         count(DISTINCT l.order_id) AS n_orders
  FROM latest l JOIN products p USING (product_id)
  GROUP BY ALL
) TO ? (FORMAT parquet)
"""


def duckdb_weekly(
    files: list[str], products_glob: str, cutoff: str, out: str, threads: int
) -> float:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    with Timer() as t:
        con.execute(DUCKDB_SQL, [files, cutoff, products_glob, out])
    con.close()
    return t.seconds


SPARK_SCHEMA = (
    "order_id string, line_no int, customer_id string, product_id string, quantity int, "
    "unit_price double, discount double, order_ts timestamp, updated_at timestamp, status string"
)


def spark_weekly(spark, files: list[str], products_glob: str, cutoff: str, out: str) -> float:
    """DUCKDB_SQL in Spark: same files, filters, dedupe, join and aggregate; parquet out."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    with Timer() as t:
        raw = spark.read.schema(SPARK_SCHEMA).option("mode", "PERMISSIVE").json(files)
        valid = raw.where(
            F.col("order_id").isNotNull()
            & F.col("line_no").isNotNull()
            & F.col("customer_id").isNotNull()
            & F.col("product_id").isNotNull()
            & F.col("quantity").isNotNull()
            & (F.col("quantity") != 0)
            & (F.col("unit_price") > 0)
            & F.col("order_ts").isNotNull()
            & (F.col("order_ts") <= F.lit(cutoff).cast("timestamp"))
        )
        order = F.coalesce("updated_at", "order_ts").desc()
        latest = (
            valid.withColumn(
                "_rank",
                F.row_number().over(Window.partitionBy("order_id", "line_no").orderBy(order)),
            )
            .where(F.col("_rank") == 1)
            .drop("_rank")
        )
        products = (
            spark.read.option("header", "true").csv(products_glob).select("product_id", "category")
        )
        kept = F.col("status") != "cancelled"
        (
            latest.join(F.broadcast(products), "product_id")
            .groupBy(
                "product_id",
                "category",
                F.date_trunc("week", "order_ts").cast("date").alias("week_start"),
            )
            .agg(
                F.sum(F.when(kept, F.col("quantity")).otherwise(0)).alias("units"),
                F.sum(
                    F.when(
                        kept,
                        F.col("quantity") * F.col("unit_price")
                        - F.coalesce("discount", F.lit(0.0)),
                    ).otherwise(0.0)
                ).alias("revenue"),
                F.count_distinct("order_id").alias("n_orders"),
            )
            .write.mode("overwrite")
            .parquet(out)
        )
    return t.seconds


def floor_inputs(work: Path, settings: Settings, full_as_of: date) -> tuple[list[str], str, str]:
    """The order files a full refresh for `full_as_of` reads, the products glob, the cutoff."""
    files = [
        f for f in glob.glob(str(work / "landing" / "orders" / "batch_date=*" / "*.txt"))
        if f.split("batch_date=")[1][:10] <= full_as_of.isoformat()
    ]  # fmt: skip
    cutoff = (full_as_of + timedelta(days=settings.clean.max_future_days + 1)).isoformat()
    return files, str(work / "landing" / "products" / "*.csv"), cutoff


def lines_read(summary: RunSummary) -> int:
    """Raw lines the run's silver stage read (its reconciliation)."""
    silver = summary.stage("silver")
    if silver is None:
        raise SystemExit("the refresh ran no silver stage")
    return int(silver.summary["reconciliation"]["raw_lines_read"])


def next_day_runs(
    spark, settings: Settings, work: Path, previous_day: date, end: date, runs: int
) -> tuple[list[float], list[dict[str, float]], int]:
    """Times `runs` next-day refreshes for `end`, each after an untimed one for `previous_day`.

    Run 1 uses the bench warehouse; each later run a copy of the state the full refresh left.
    """
    before = work / "warehouse_before"
    shutil.rmtree(before, ignore_errors=True)
    if runs > 1:
        shutil.copytree(work / "warehouse", before)
    seconds: list[float] = []
    stages: list[dict[str, float]] = []
    lines = 0
    for run in range(1, runs + 1):
        target = work / "warehouse" if run == 1 else work / f"warehouse_next_day_{run}"
        if run > 1:  # a folder of its own: no cached Delta state of an earlier run applies
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(before, target)
        run_settings = settings.with_overrides(paths={"warehouse": str(target)})
        clear_codegen_cache(spark)  # the session holds what the full refresh compiled
        _progress(f"next day {run}/{runs}: the previous day, {previous_day} (untimed)")
        refresh(spark, run_settings, previous_day, CORE)
        _progress(f"next day {run}/{runs}: refresh for {end}")
        with Timer() as t:
            summary = refresh(spark, run_settings, end, CORE)
        read = lines_read(summary)
        if run > 1 and read != lines:
            raise SystemExit(f"next-day run {run} read {read:,} lines, run 1 {lines:,}")
        lines = read
        seconds.append(t.seconds)
        stages.append({s.stage: s.seconds for s in summary.stages})
        _progress(f"next day {run}/{runs}: {lines:,} lines in {t.seconds:.1f} s")
        if run > 1:
            shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(before, ignore_errors=True)
    return seconds, stages, lines


def figures(r: dict[str, Any]) -> list[Row]:
    """The printed table: each figure, its target and whether it is met."""
    stages = " / ".join(f"{k} {v:.2f}" for k, v in r["full_stage_seconds"].items())
    runs = ", ".join(f"{s:.2f}" for s in r["incremental_runs_seconds"])
    rows: list[Row] = [
        ("full refresh (s)", f"{r['full_refresh_seconds']:.2f}", "", ""),
        ("full refresh stages (s)", stages, "", ""),
        ("Spark floor (s)", f"{r['spark_floor_seconds']:.2f}", "", ""),
        ("full refresh / floor", f"{r['full_over_floor']:.2f}", f"<= {FLOOR_TARGET:g}",
         status(r["full_over_floor"], FLOOR_TARGET)),
        ("next-day refresh (s)", f"{r['incremental_seconds']:.2f} (median of {runs})", "", ""),
        ("next-day / full", f"{r['incremental_over_full']:.4f}", f"<= {NEXT_DAY_TARGET:g}",
         status(r["incremental_over_full"], NEXT_DAY_TARGET)),
    ]  # fmt: skip
    if r.get("duckdb_seconds") is not None:
        rows += [
            ("DuckDB (s), reference", f"{r['duckdb_seconds']:.2f}", "", ""),
            ("full refresh / DuckDB, reference", f"{r['full_over_duckdb']:.2f}", "", ""),
        ]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="salesopt-bench-"))
    overrides = {
        "generate.customers": args.customers,
        "generate.products": args.products,
        "generate.days": args.days,
        "generate.dirty_rate": args.dirty_rate,
        "paths.landing": str(work / "landing"),
        "paths.warehouse": str(work / "warehouse"),
        "demo": True,  # permits the fixed demo PII key
    }
    settings = load_settings(args.conf, overrides=overrides)
    spark = get_spark(settings.spark)
    cores = int(spark.sparkContext.defaultParallelism)
    end = last_day(settings.generate)
    previous_day = end - timedelta(days=args.hold_days)
    full_as_of = previous_day - timedelta(days=1)
    gen: GenerateSummary | None = None
    if args.reuse_landing:
        if not (work / "landing" / "orders").is_dir():
            raise SystemExit(f"--reuse-landing: no landing/orders in {work}")
    else:
        _progress(f"generating the landing files in {work / 'landing'}")
        gen = generate(spark, str(work), settings.generate)
    if empty_warehouse(work / "warehouse"):
        _progress(f"removed the warehouse an earlier bench left in {work / 'warehouse'}")
    _progress(f"full refresh for {full_as_of} into an empty warehouse")
    clear_codegen_cache(spark)
    with Timer() as full_t:
        full = refresh(spark, settings, full_as_of, CORE)
    full_lines = lines_read(full)
    _progress(f"full refresh: {full_lines:,} lines in {full_t.seconds:.1f} s")
    inc_seconds, inc_stages, inc_lines = next_day_runs(
        spark, settings, work, previous_day, end, args.incremental_runs
    )
    files, products, cutoff = floor_inputs(work, settings, full_as_of)
    _progress(f"the Spark floor on the full refresh's {len(files):,} files")
    floor_s = spark_weekly(spark, files, products, cutoff, str(work / "spark_floor.parquet"))
    duck_s = None
    if not args.skip_duckdb:
        _progress("DuckDB on the same files")
        duck_s = duckdb_weekly(files, products, cutoff, str(work / "duck.parquet"), cores)
    results: dict[str, Any] = {
        "customers": args.customers,
        "products": args.products,
        "days": args.days,
        "hold_days": args.hold_days,
        "cores": cores,
        "generated_landing_lines": gen.landing_lines if gen else None,
        "reused_landing": bool(args.reuse_landing),
        "full_refresh_lines": full_lines,
        "full_refresh_seconds": full_t.seconds,
        "full_stage_seconds": {s.stage: s.seconds for s in full.stages},
        "spark_floor_seconds": floor_s,
        "full_over_floor": round(full_t.seconds / floor_s, 2),
        "duckdb_seconds": duck_s,
        "full_over_duckdb": round(full_t.seconds / duck_s, 2) if duck_s else None,
        "incremental_lines": inc_lines,
        **incremental_results(full_t.seconds, inc_seconds),
        "incremental_stage_seconds": inc_stages,
    }
    spark.stop()
    generated = f"{gen.landing_lines:,} generated" if gen else "landing reused"
    title = (
        f"refresh bench: {full_lines:,} lines in the full refresh ({generated}), "
        f"{inc_lines:,} in the next day, {cores} cores"
    )
    report("refresh", title, figures(results), results, args.json)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0
