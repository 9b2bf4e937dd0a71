"""Probe: what one single-row bookkeeping append costs (`ops/runs`-shaped row), part by part.

Not a registered bench (no result file): a measurement aid for the run bookkeeping, which writes
ten such rows per refresh. In a scratch folder (removed first) it creates two tables, one with
file statistics (the default) and one without (`delta.dataSkippingNumIndexedCols = 0`), and
appends to them in turn, `--appends` times each, timing the write and the version lookup that
`Warehouse.append` used to do after it:

    SALESOPT_JARS_DIR=.jars .venv/bin/python -m bench.probe_append --appends 24

Every tenth commit of a table also writes a Delta checkpoint, hence the maxima.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from bench.common import LOCAL_CONF, Timer
from salesopt.config import load_settings
from salesopt.io.tables import Warehouse
from salesopt.pipeline import _RUN_SCHEMA
from salesopt.session import get_spark

_ROW = (
    "run", date(2025, 1, 1), "silver", "succeeded", datetime(2025, 1, 1), datetime(2025, 1, 1),
    1.0, 1, {"silver/order_lines": 1}, {"silver/order_lines": 1}, None,
)  # fmt: skip


def _summary(name: str, seconds: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(seconds):.3f} s, mean {statistics.mean(seconds):.3f} s,"
        f" max {max(seconds):.2f} s ({len(seconds)} calls)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--appends", type=int, default=24)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/salesopt-probe-append"))
    p.add_argument("--conf", type=Path, default=LOCAL_CONF)
    args = p.parse_args(argv)
    shutil.rmtree(args.workdir, ignore_errors=True)
    settings = load_settings(args.conf, overrides={"paths.warehouse": str(args.workdir)})
    spark = get_spark(settings.spark)
    wh = Warehouse.from_settings(settings)
    variants = {"with stats": {}, "no stats": {"delta.dataSkippingNumIndexedCols": "0"}}
    for name, options in variants.items():  # created (and JIT-warmed) before timing
        row = spark.createDataFrame([_ROW], _RUN_SCHEMA)
        row.write.format("delta").options(**options).save(wh.path("ops", name.replace(" ", "_")))
    writes: dict[str, list[float]] = {name: [] for name in variants}
    lookups: list[float] = []
    for _ in range(args.appends):
        for name in variants:
            table = name.replace(" ", "_")
            with Timer() as t:
                wh.append(spark.createDataFrame([_ROW], _RUN_SCHEMA), "ops", table)
            writes[name].append(t.seconds)
            if name == "with stats":
                with Timer() as t:
                    wh.version(spark, "ops", table)
                lookups.append(t.seconds)
    for name, seconds in writes.items():
        print(_summary(f"append, {name}", seconds))
    print(_summary("version lookup after an append", lookups))
    spark.stop()


if __name__ == "__main__":
    main()
