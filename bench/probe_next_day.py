"""Probe: two daily refreshes in one Spark session, with the number of classes each compiled.

Not a registered bench (no result file): a measurement aid for the session's cache of compiled
query code (`spark.sql.codegen.cache.maxEntries`, `salesopt.session.one_machine_conf`). It uses
the landing and `<workdir>/warehouse_full` of a `bench.bench_refresh --keep-full` run:

    SALESOPT_JARS_DIR=.jars .venv/bin/python -m bench.probe_next_day --workdir /tmp/b10m

Copies `warehouse_full` to `<workdir>/warehouse_probe`, then in one fresh session refreshes
`as_of` = last day - `--day-runs` x `--next-days` (the first run: everything compiled afresh) and
then `--day-runs` next days' runs (default 1), each `--next-days` after the one before, the last
one on the last day. With `--day-runs 5` the session runs as a long-lived driver would for five
days (the bench's `warehouse_full` stands at last day - 5, so the first run then has nothing
new). It prints each run's seconds and the classes Spark compiled during it (the
`CodeGenerator.compilationTime` count of the driver's metrics, read from the Spark UI), its
clock times (for `bench.jfr_report` with `--jfr`) and the driver JVM's CPU seconds with the
JIT compiler's share (`bench.jvm_cpu`).
`--spark-conf key=value` adds session settings (A/B of the cache size:
`--spark-conf spark.sql.codegen.cache.maxEntries=100` is Spark's default).
"""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
import urllib.request
from collections.abc import Sequence
from datetime import date, timedelta

from pyspark.sql import SparkSession

from bench import jvm_cpu
from bench.common import probe_parser, probe_settings
from salesopt.datagen import last_day
from salesopt.pipeline import WAREHOUSE_STAGES as CORE
from salesopt.pipeline import refresh
from salesopt.session import get_spark


def compiled_classes(spark: SparkSession) -> int:
    """Classes compiled by this driver so far (Spark's codegen metrics, via the UI servlet)."""
    ui = spark.sparkContext.uiWebUrl
    if ui is None:
        raise SystemExit("the probe reads Spark's metrics from its UI: enable spark.ui_enabled")
    with urllib.request.urlopen(ui + "/metrics/json/") as response:
        histograms = json.load(response)["histograms"]
    metric = "CodeGenerator.compilationTime"
    return next(int(v["count"]) for k, v in histograms.items() if k.endswith(metric))


def daily_runs(end: date, days: int, next_days: int) -> list[tuple[str, date]]:
    """(label, as_of) of the first run and the `days` runs after it, the last one on `end`."""
    step = timedelta(days=next_days)
    runs = [("first run", end - days * step)]
    runs += [
        ("next day" if days == 1 else f"next day {n}", end - (days - n) * step)
        for n in range(1, days + 1)
    ]
    return runs


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = probe_parser(__doc__.splitlines()[0])
    p.add_argument(
        "--next-days",
        type=int,
        default=1,
        help="days of files each next day's run reads (the first run reads the rest; default 1)",
    )
    p.add_argument(
        "--day-runs", type=int, default=1,
        help="next days' runs after the first, one session (default 1; 5: a driver's week)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.day_runs < 1 or args.next_days < 1:
        p.error("--day-runs and --next-days must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    full_wh, probe_wh = args.workdir / "warehouse_full", args.workdir / "warehouse_probe"
    if not full_wh.is_dir():
        raise SystemExit(f"{full_wh} not found: run bench.bench_refresh --keep-full first")
    settings = probe_settings(args, probe_wh)
    shutil.rmtree(probe_wh, ignore_errors=True)
    shutil.copytree(full_wh, probe_wh)
    spark = get_spark(settings.spark)
    cache = spark.conf.get("spark.sql.codegen.cache.maxEntries")
    end = last_day(settings.generate)
    pid = jvm_cpu.jvm_pid(spark)
    for label, as_of in daily_runs(end, args.day_runs, args.next_days):
        before = compiled_classes(spark)
        with jvm_cpu.Run(pid) as t:
            refresh(spark, settings, as_of, CORE)
        compiled = compiled_classes(spark) - before
        print(f"{label} ({as_of}): {t.seconds:.1f} s, {compiled} classes compiled, cache {cache}")
        print(textwrap.indent(t.report(), "  "))
    spark.stop()


if __name__ == "__main__":
    main()
