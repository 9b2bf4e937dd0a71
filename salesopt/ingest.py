"""Landing files -> `bronze/orders_raw`: append-only, file-level idempotent, crash-safe.

A batch is the set of landing files not yet ingested whose delivery date (the `batch_date=`
folder, see docs/source-contract.md) is on or before `as_of`; files without a delivery date are
taken at once. Bookkeeping is write-ahead in `ops/ingest_batches`:

1. a `pending` row lists the batch's files;
2. their lines are appended to bronze in one Delta commit tagged with the idempotent-write
   options `txnAppId`/`txnVersion` = the batch sequence number;
3. an `ingested` row closes the batch.

A crash after 1 or 2 leaves a `pending` batch; the next run replays exactly those files with the
same `txnVersion`, and Delta skips the append if it had already committed. A file is never
ingested twice, and no file is lost.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timezone

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from salesopt.context import StageContext, StageResult
from salesopt.errors import InputError
from salesopt.ops import BRONZE_ORDERS, Batch, latest_batch_states, log_batch

log = logging.getLogger(__name__)

TXN_APP_ID = "salesopt-bronze-orders"
_DELIVERY = re.compile(r"batch_date=(\d{4}-\d{2}-\d{2})")


def delivery_date(path: str) -> date | None:
    """Delivery date from a `batch_date=YYYY-MM-DD[...]` folder in the path, if any."""
    match = _DELIVERY.search(path)
    return date.fromisoformat(match.group(1)) if match else None


def canonical_path(path: str) -> str:
    """One spelling per file: `file:/x`, `file:///x` and `/x` all become `file:///x`."""
    if path.startswith("file:"):
        return "file:///" + path[len("file:") :].lstrip("/")
    if path.startswith("/"):
        return "file:///" + path.lstrip("/")
    return path


def list_landing_files(spark: SparkSession, folder: str) -> list[str]:
    """Data files under `folder` (recursive; names starting with `_` or `.` are skipped).

    Lists through Spark's file index, so it works on any Hadoop file system (local, S3, ADLS,
    GCS, DBFS, Volumes) without reading file contents (a scan would skip empty files).
    """
    try:
        index = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", "[!_.]*")
            .load(folder)
        )
        # the file index, not a scan: it includes empty files and runs no job
        return sorted(canonical_path(p) for p in index.inputFiles())
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
            raise InputError(f"landing folder not found: {folder}") from None
        raise


def plan_batch(ctx: StageContext, folder: str) -> tuple[Batch | None, bool, int]:
    """The batch to ingest now, whether it replays a pending (crashed) batch, and how many new
    files carry a delivery date after `as_of` (they wait for a later refresh)."""
    states = latest_batch_states(ctx)
    pending = [s for s in states if s["status"] == "pending"]
    if pending:
        first = pending[0]
        log.warning("replaying pending batch %s (%d files)", first["batch_id"], first["n_files"])
        return Batch(seq=first["seq"], files=tuple(first["files"])), True, 0
    seen = {canonical_path(f) for s in states for f in s["files"]}
    listed = list_landing_files(ctx.spark, folder)
    due = [
        f for f in listed
        if f not in seen and ((d := delivery_date(f)) is None or d <= ctx.as_of)
    ]  # fmt: skip
    due_set = set(due)
    later = sum(1 for f in listed if f not in seen and f not in due_set)
    if not due:
        return None, False, later
    next_seq = max((s["seq"] for s in states), default=0) + 1
    return Batch(seq=next_seq, files=tuple(due)), False, later


def read_raw_lines(spark: SparkSession, batch: Batch, ingested_at: datetime) -> DataFrame:
    """Raw text lines of the batch's files with ingest metadata. Grain: one row per line."""
    return (
        spark.read.text(list(batch.files))
        # the file source's metadata column (input_file_name() is not supported on Unity
        # Catalog clusters); local paths spelled file:///x, as `canonical_path` spells them
        .withColumn(
            "_source_file",
            F.regexp_replace(F.col("_metadata.file_path"), "^file:/+", "file:///"),
        )
        .withColumn(
            "_delivery_date",
            F.to_date(F.regexp_extract("_source_file", _DELIVERY.pattern, 1), "yyyy-MM-dd"),
        )
        .withColumn("_ingested_at", F.lit(ingested_at).cast(T.TimestampType()))
        .withColumn("_batch_id", F.lit(batch.batch_id))
        .where(F.length(F.trim(F.col("value"))) > 0)
        .select("value", "_source_file", "_delivery_date", "_ingested_at", "_batch_id")
    )


def run(ctx: StageContext) -> StageResult:
    """Appends the next batch of landing order files to bronze; returns what it did."""
    folder = f"{ctx.settings.paths.landing.rstrip('/')}/orders"
    batch, replay, later = plan_batch(ctx, folder)
    wh = ctx.warehouse
    if later:
        log.info(
            "%d landing files are delivered after %s: a later refresh reads them", later, ctx.as_of
        )
    if batch is None:
        log.info("no new landing files under %s", folder)
        return StageResult(
            tables={"bronze/orders_raw": wh.version(ctx.spark, *BRONZE_ORDERS)},
            rows_in=0,
            summary={"batch_id": None, "files": 0, "lines": 0, "files_delivered_later": later},
        )
    if not replay:
        log_batch(ctx, batch, "pending", None)
    log.info("ingesting batch %s: %d files", batch.batch_id, len(batch.files))
    ingested_at = datetime.now(timezone.utc).replace(tzinfo=None)
    raw = read_raw_lines(ctx.spark, batch, ingested_at)
    (
        raw.write.format("delta")
        .mode("append")
        .option("txnAppId", TXN_APP_ID)
        .option("txnVersion", batch.seq)
        .partitionBy("_batch_id")
        .save(wh.path(*BRONZE_ORDERS))
    )
    wh.register(ctx.spark, *BRONZE_ORDERS)
    lines = wh.read(ctx.spark, *BRONZE_ORDERS).where(F.col("_batch_id") == batch.batch_id).count()
    log_batch(ctx, batch, "ingested", lines)
    log.info("batch %s: %d lines in bronze", batch.batch_id, lines)
    return StageResult(
        tables={"bronze/orders_raw": wh.version(ctx.spark, *BRONZE_ORDERS)},
        rows_in=lines,
        rows_out={"bronze/orders_raw": lines},
        summary={
            "batch_id": batch.batch_id,
            "files": len(batch.files),
            "lines": lines,
            "replayed": replay,
            "files_delivered_later": later,
        },
    )
