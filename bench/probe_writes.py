"""Probe: the two writes a daily refresh makes to a slice or batch the table does not hold yet.

Not a registered bench (no result file): a measurement aid for `Warehouse.write_slice` and the
quarantine write of `silver._write_quarantine`. It copies two tables of a bench warehouse
(`<workdir>/warehouse_full`, left by `salesopt bench refresh --keep-full`) to a scratch folder
and, interleaved `--rounds` times, writes:

- a new `as_of` slice of `gold/customer_features` (`--slice-rows` rows of the table under a
  new date): `replaceWhere` on the new date (`write_slice` without the hint), against
  `write_slice(new=True)`, which appends; both then look the version up. It also times the
  question a generic `write_slice` would have to ask first: does the table hold that date?
- a new batch's rejects into `quarantine/orders_rejected` (`--rejects` rows of the table under a
  new `_batch_id`): a check for rows of that batch followed by an append (what
  `silver._write_quarantine` does since 2026-11-30), against the insert-only MERGE on the line
  key it replaced.

    SALESOPT_JARS_DIR=.jars .venv/bin/python -m bench.probe_writes --workdir /tmp/b10m

Every tenth commit of a table also writes a Delta checkpoint, hence the maxima.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.common import LOCAL_CONF, Timer
from salesopt.config import load_settings
from salesopt.io.tables import Warehouse, agg_row
from salesopt.session import get_spark

SLICES = ("gold", "customer_features")
QUARANTINE = ("quarantine", "orders_rejected")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, required=True, help="a bench_refresh --workdir")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--slice-rows", type=int, default=23_568, help="rows per slice write")
    p.add_argument("--rejects", type=int, default=1_579, help="rows per quarantine write")
    p.add_argument("--conf", type=Path, default=LOCAL_CONF)
    args = p.parse_args(argv)
    source = args.workdir / "warehouse_full"
    if not source.is_dir():
        raise SystemExit(f"{source} not found: run salesopt bench refresh --keep-full first")
    scratch = args.workdir / "probe_writes"
    shutil.rmtree(scratch, ignore_errors=True)
    for layer, name in (SLICES, QUARANTINE):
        shutil.copytree(source / layer / name, scratch / layer / name)
    settings = load_settings(args.conf, overrides={"paths.warehouse": str(scratch)})
    spark = get_spark(settings.spark)
    wh = Warehouse.from_settings(settings)
    latest = agg_row(wh.read(spark, *SLICES).agg(F.max("as_of")))[0]
    slice_rows = wh.read(spark, *SLICES).limit(args.slice_rows).localCheckpoint()
    rejects = wh.read(spark, *QUARANTINE).limit(args.rejects).localCheckpoint()
    print(f"slice: {slice_rows.count():,} rows; rejects: {rejects.count():,} rows")
    day = [latest]

    def new_slice() -> tuple[DataFrame, str]:
        day[0] += timedelta(days=1)
        return slice_rows.withColumn("as_of", F.lit(day[0])), f"as_of = DATE'{day[0]}'"

    def read_table() -> None:
        """What a refresh does before its slice write: read the table's current version (the
        prior rows of the changed keys), so Delta has that version's file list in hand."""
        wh.read(spark, *SLICES).where(F.col("as_of") == day[0]).count()

    def replace_new_slice() -> None:
        rows, predicate = new_slice()
        wh.replace_where(rows, *SLICES, predicate, ("as_of",))  # looks the version up

    def append_new_slice() -> None:
        rows, _ = new_slice()
        wh.write_slice(rows, *SLICES, day[0], new=True)

    def check_slice() -> None:
        wh.read(spark, *SLICES).where(F.col("as_of") == day[0] + timedelta(days=1)).isEmpty()

    batch = [0]

    def new_batch() -> tuple[DataFrame, str]:
        batch[0] += 1
        batch_id = f"probe{batch[0]:05d}"
        return rejects.withColumn("_batch_id", F.lit(batch_id)), batch_id

    def merge_rejects() -> None:
        rows, batch_id = new_batch()
        key = ("_source_file", "_record_hash", "_dup_index")
        condition = " AND ".join(f"t.{k} = s.{k}" for k in key) + f" AND t._batch_id = '{batch_id}'"
        DeltaTable.forPath(spark, wh.path(*QUARANTINE)).alias("t").merge(
            rows.alias("s"), condition
        ).whenNotMatchedInsertAll().execute()

    def append_rejects() -> None:
        rows, batch_id = new_batch()
        held = wh.read(spark, *QUARANTINE).where(F.col("_batch_id") == batch_id)
        if held.isEmpty():
            wh.append(rows, *QUARANTINE)

    variants: dict[str, Callable[[], None]] = {
        "new slice, replaceWhere": replace_new_slice,
        "new slice, write_slice(new=True): append": append_new_slice,
        "does the table hold a slice at a date (isEmpty)": check_slice,
        "new batch's rejects, insert-only MERGE": merge_rejects,
        "new batch's rejects, check and append": append_rejects,
    }
    for run in variants.values():  # JIT and Delta caches warmed before timing
        run()
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            read_table()  # untimed
            with Timer() as t:
                run()
            seconds[name].append(t.seconds)
    for name, values in seconds.items():
        print(
            f"{name}: median {statistics.median(values):.2f} s, "
            f"min {min(values):.2f} s, max {max(values):.2f} s ({len(values)} writes)"
        )
    rows = wh.read(spark, *SLICES).groupBy("as_of").count().where(F.col("as_of") > latest)
    doubled = rows.where(F.col("count") != slice_rows.count()).count()
    print(f"new slices: {rows.count()}, slices with other than one copy of the rows: {doubled}")
    spark.stop()
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
