"""`salesopt maintain`: OPTIMIZE (compaction) and VACUUM for every Delta table of the warehouse.

With `maintain.snapshot_retention_days` set, it first deletes the old slices of every snapshot
table (partitioned by `as_of`): a slice stays when its `as_of` is at most that many days before
the table's newest `as_of`, or, with `maintain.snapshot_keep_month_ends` (default on), when it is
the last `as_of` of its calendar month. Every slice is a complete snapshot, so any kept date
reads on its own. The deleted files go at the next VACUUM past its retention.

VACUUM keeps `maintain.vacuum_retention_hours` of history (default 168 h = 7 days, Delta's own
safe default): time travel and concurrent readers older than that lose their files. A retention
below 168 h needs `spark.databricks.delta.retentionDurationCheck.enabled=false` in spark.conf,
deliberately.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from salesopt.config import Settings
from salesopt.io import delta
from salesopt.io.tables import LAYERS, Warehouse, agg_row, list_file_stats, sql_dates
from salesopt.ops import local_guard, tag_commits

log = logging.getLogger(__name__)


def list_tables(spark: SparkSession, warehouse: Warehouse) -> list[tuple[str, str]]:
    """(layer, name) of every Delta table directly under the warehouse's layer folders.

    Candidates are the first folder level under each layer that holds data files (Spark's file
    index skips `_delta_log` itself); each is confirmed as a Delta table.
    """
    found = set()
    for layer in LAYERS:
        for path, _, _ in list_file_stats(spark, f"{warehouse.root}/{layer}"):
            # <root>/<layer>/<name>/[partition folders/]part-...; names never equal a layer
            name = path.rsplit(f"/{layer}/", 1)[-1].split("/", 1)[0]
            if (layer, name) not in found and delta.is_delta_table(
                spark, warehouse.path(layer, name)
            ):
                found.add((layer, name))
    return sorted(found)


def expire_slices(
    spark: SparkSession, path: str, retention_days: int, keep_month_ends: bool
) -> dict[str, Any]:
    """Deletes the `as_of` slices the retention rule does not keep; returns counts.

    Kept: slices at most `retention_days` before the newest `as_of`, and with `keep_month_ends`
    the newest `as_of` of each calendar month.
    """
    df = spark.read.format("delta").load(path)
    newest = agg_row(df.agg(F.max("as_of")))[0]
    if newest is None:
        return {"slices_deleted": 0, "rows_deleted": 0}
    old = f"as_of < {sql_dates([newest - timedelta(days=retention_days)])}"
    if keep_month_ends:
        month_ends = df.groupBy(F.trunc("as_of", "month")).agg(F.max("as_of").alias("d")).collect()
        ends = [r["d"] for r in month_ends if r["d"] is not None]
        if ends:
            old += f" AND as_of NOT IN ({sql_dates(ends)})"
    stats = agg_row(df.where(old).agg(F.count_distinct("as_of"), F.count(F.lit(1))))
    if stats[1]:
        delta.delete(spark, path, old)
    return {"slices_deleted": int(stats[0]), "rows_deleted": int(stats[1]), "newest_as_of": newest}


LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
SPARK_DEFAULT_LISTING_PARALLELISM = "10000"


@contextmanager
def _listing_parallelism(spark: SparkSession) -> Iterator[None]:
    """Sizes VACUUM's file listing to the cluster while maintenance runs.

    VACUUM lists a table's files with a Spark job of
    `spark.sql.sources.parallelPartitionDiscovery.parallelism` tasks, 10,000 by default: on a
    few cores scheduling those tasks costs far more than listing a small table's files. Unless
    that setting was changed, it is set to twice the default parallelism (over Spark Connect,
    the shuffle partitions) for the duration.
    """
    previous = spark.conf.get(LISTING_PARALLELISM)
    try:
        cores: int | None = spark.sparkContext.defaultParallelism
    except Exception:  # Spark Connect: no SparkContext; the shuffle width stands in for it
        shuffle = spark.conf.get("spark.sql.shuffle.partitions", "")
        cores = int(shuffle) if shuffle and shuffle.isdigit() else None
    if previous != SPARK_DEFAULT_LISTING_PARALLELISM or cores is None:
        yield
        return
    try:
        spark.conf.set(LISTING_PARALLELISM, str(max(8, 2 * cores)))
        changed = True
    except Exception:  # a managed server may fix it: VACUUM lists with its setting
        log.info("the session keeps its own %s", LISTING_PARALLELISM)
        changed = False
    try:
        yield
    finally:
        if changed:
            spark.conf.set(LISTING_PARALLELISM, previous)


def maintain(spark: SparkSession, settings: Settings, vacuum: bool = True) -> dict[str, Any]:
    """Compacts and vacuums every table; returns per-table metrics and timings.

    Takes the local guard like a refresh (`salesopt.ops.local_guard`): slice expiry's DELETE and
    OPTIMIZE's rewrites would otherwise conflict with a refresh's writes to the same tables.
    Schedule it apart from refreshes elsewhere; a conflicting commit fails with Delta's error.
    """
    run_id = "maintain-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    with local_guard(settings, run_id), tag_commits(spark, run_id), _listing_parallelism(spark):
        return _maintain(spark, settings, vacuum)


def _maintain(spark: SparkSession, settings: Settings, vacuum: bool) -> dict[str, Any]:
    warehouse = Warehouse.from_settings(settings)
    tables = list_tables(spark, warehouse)
    report: dict[str, Any] = {
        "tables": {},
        "vacuum_retention_hours": settings.maintain.vacuum_retention_hours,
    }
    for layer, name in tables:
        t0 = time.perf_counter()
        path = warehouse.path(layer, name)
        entry: dict[str, Any] = {}
        retention = settings.maintain.snapshot_retention_days
        if retention is not None and delta.detail(spark, path)["partitionColumns"] == ["as_of"]:
            month_ends = settings.maintain.snapshot_keep_month_ends
            entry.update(expire_slices(spark, path, retention, month_ends))
        if settings.maintain.optimize:
            metrics = delta.optimize(spark, path)
            entry["files_removed"] = int(metrics["metrics"]["numFilesRemoved"]) if metrics else 0
            entry["files_added"] = int(metrics["metrics"]["numFilesAdded"]) if metrics else 0
        if vacuum:
            delta.vacuum(spark, path, settings.maintain.vacuum_retention_hours)
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        report["tables"][f"{layer}/{name}"] = entry
        log.info("maintained %s/%s in %.1fs", layer, name, entry["seconds"])
    return report
