"""`salesopt maintain`: OPTIMIZE (compaction) and VACUUM for every Delta table of the warehouse.

VACUUM keeps `maintain.vacuum_retention_hours` of history (default 168 h = 7 days, Delta's own
safe default): time travel and concurrent readers older than that lose their files. A retention
below 168 h needs `spark.databricks.delta.retentionDurationCheck.enabled=false` in spark.conf,
deliberately.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from salesopt.config import Settings
from salesopt.io.tables import LAYERS, Warehouse

log = logging.getLogger(__name__)


def list_tables(spark: SparkSession, warehouse: Warehouse) -> list[tuple[str, str]]:
    """(layer, name) of every Delta table directly under the warehouse's layer folders."""
    found = []
    for layer in LAYERS:
        try:
            listing = (
                spark.read.format("binaryFile")
                .option("recursiveFileLookup", "true")
                .option("pathGlobFilter", "00000000000000000000.json")
                .load(f"{warehouse.root}/{layer}")
                .select("path")
                .collect()
            )
        except Exception:
            continue
        for row in listing:
            parts = row["path"].rstrip("/").split("/")
            if len(parts) >= 3 and parts[-2] == "_delta_log" and parts[-4] == layer:
                found.append((layer, parts[-3]))
    return sorted(set(found))


def maintain(spark: SparkSession, settings: Settings, vacuum: bool = True) -> dict[str, Any]:
    """Compacts and vacuums every table; returns per-table metrics and timings."""
    warehouse = Warehouse.from_settings(settings)
    tables = list_tables(spark, warehouse)
    report: dict[str, Any] = {
        "tables": {},
        "vacuum_retention_hours": settings.maintain.vacuum_retention_hours,
    }
    for layer, name in tables:
        t0 = time.perf_counter()
        table = DeltaTable.forPath(spark, warehouse.path(layer, name))
        entry: dict[str, Any] = {}
        if settings.maintain.optimize:
            metrics = table.optimize().executeCompaction().first()
            entry["files_removed"] = int(metrics["metrics"]["numFilesRemoved"]) if metrics else 0
            entry["files_added"] = int(metrics["metrics"]["numFilesAdded"]) if metrics else 0
        if vacuum:
            table.vacuum(settings.maintain.vacuum_retention_hours / 1.0)
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        report["tables"][f"{layer}/{name}"] = entry
        log.info("maintained %s/%s in %.1fs", layer, name, entry["seconds"])
    return report
