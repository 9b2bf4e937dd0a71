"""Run bookkeeping shared by the stages: table names, the batch log, the run log, the local guard.

Stages import this module (and `salesopt.context`), never each other:

- `ops/ingest_batches`: the write-ahead log of landing batches (`pending` -> `ingested` ->
  `cleaned` -> `published`), one appended row per state change;
- `ops/runs`: one row per stage of every run, whatever its outcome;
- `local_guard`: one refresh at a time on a warehouse on the local file system;
- `tag_commits`: every Delta commit of a run carries its run id in the commit's `userMetadata`
  (`{"run_id": ...}`), so `DESCRIBE HISTORY` ties each table version to the run that wrote it
  and `salesopt rollback` finds what a run changed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt.config import Settings
from salesopt.context import StageContext
from salesopt.errors import SetupError, WarehouseLocked
from salesopt.summary import StageReport

log = logging.getLogger(__name__)

BRONZE_ORDERS = ("bronze", "orders_raw")
ORDER_LINES = ("silver", "order_lines")
BATCHES_TABLE = ("ops", "ingest_batches")
RUNS_TABLE = ("ops", "runs")
_BATCH_SCHEMA = (
    "seq long, batch_id string, status string, files array<string>, n_files int, "
    "lines long, as_of date, run_id string, logged_at timestamp"
)
_RUN_SCHEMA = (
    "run_id string, as_of date, stage string, status string, started_at timestamp, "
    "ended_at timestamp, seconds double, rows_in long, rows_out map<string,long>, "
    "tables map<string,long>, message string, rollback_of string"
)
# Spark conf whose value Delta stores as `userMetadata` in every commit of the session
COMMIT_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"


def utc_now() -> datetime:
    """The current UTC time as a naive timestamp (how Spark stores `timestamp` in UTC)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Batch:
    """A landing batch: its sequence number and the files it holds."""

    seq: int
    files: tuple[str, ...]

    @property
    def batch_id(self) -> str:
        return f"b{self.seq:08d}"


_CACHED = f"{__name__}.batch_states"  # key in `StageContext.run_cache`


def latest_batch_states(ctx: StageContext) -> list[dict]:
    """Latest row per batch from the write-ahead log (small: one row per batch), by `seq`.

    Read from the table once per run; the run's own `log_batch` appends keep that copy current.
    """
    cached = ctx.run_cache.get(_CACHED)
    if cached is None:
        cached = {s["seq"]: s for s in _read_batch_states(ctx)}
        ctx.run_cache[_CACHED] = cached
    return [dict(cached[seq]) for seq in sorted(cached)]


def _read_batch_states(ctx: StageContext) -> list[dict]:
    wh = ctx.warehouse
    if not wh.exists(ctx.spark, *BATCHES_TABLE):
        return []
    log_df: DataFrame = wh.read(ctx.spark, *BATCHES_TABLE)
    latest = log_df.groupBy("seq").agg(F.max_by(F.struct("*"), "logged_at").alias("r"))
    return [r["r"].asDict() for r in latest.select("r").collect()]


def log_batch(ctx: StageContext, batch: Batch, status: str, lines: int | None) -> None:
    """Appends a batch's new state to `ops/ingest_batches`."""
    row = (
        batch.seq, batch.batch_id, status, list(batch.files), len(batch.files), lines,
        ctx.as_of, ctx.run_id, utc_now(),
    )  # fmt: skip
    df = ctx.spark.createDataFrame([row], _BATCH_SCHEMA)
    ctx.warehouse.append(df, *BATCHES_TABLE)
    cached = ctx.run_cache.get(_CACHED)
    if cached is not None:
        cached[batch.seq] = dict(zip(df.columns, row, strict=True))


def commit_tag(run_id: str, **extra: str) -> str:
    """The `userMetadata` of a run's commits: `{"run_id": "<id>", ...extra}` as JSON."""
    return json.dumps({"run_id": run_id, **extra}, sort_keys=True)


def read_tag(user_metadata: str | None) -> dict[str, str]:
    """The fields of a `commit_tag` ({} for a commit without one, or another writer's text)."""
    if not user_metadata:
        return {}
    try:
        found = json.loads(user_metadata)
    except ValueError:
        return {}
    return found if isinstance(found, dict) and "run_id" in found else {}


@contextmanager
def tag_commits(spark: SparkSession, run_id: str, **extra: str) -> Iterator[None]:
    """Every Delta commit of the session carries `commit_tag(run_id, **extra)` while the block
    runs (a write's own `userMetadata` option, e.g. the dimensions' source fingerprint, adds
    to it through `commit_tag` too). The previous value is restored afterwards."""
    try:
        previous = spark.conf.get(COMMIT_METADATA_CONF, None)
        spark.conf.set(COMMIT_METADATA_CONF, commit_tag(run_id, **extra))
    except Exception as exc:  # a platform that refuses the conf: untagged, never a failure
        log.warning(
            "cannot tag this run's Delta commits with its run id (%s): `salesopt rollback` "
            "will not find them", str(exc).splitlines()[0][:200] if str(exc) else exc,
        )  # fmt: skip
        yield
        return
    try:
        yield
    finally:
        try:
            if previous is None:
                spark.conf.unset(COMMIT_METADATA_CONF)
            else:
                spark.conf.set(COMMIT_METADATA_CONF, previous)
        except Exception:  # a dead session: nothing left to tag; keep the real error
            log.debug("could not reset %s", COMMIT_METADATA_CONF, exc_info=True)


def record_stage(
    ctx: StageContext, report: StageReport, started: datetime, rollback_of: str | None = None
) -> None:
    """Appends one stage's outcome to `ops/runs` (`rollback_of`: the run a rollback undid)."""
    row = (
        ctx.run_id,
        ctx.as_of,
        report.stage,
        report.status,
        started,
        utc_now(),
        report.seconds,
        report.rows_in,
        {k: int(v) for k, v in report.rows_out.items()},
        {k: int(v) for k, v in report.tables.items() if v is not None},
        report.message,
        rollback_of,
    )
    ctx.warehouse.append(ctx.spark.createDataFrame([row], _RUN_SCHEMA), *RUNS_TABLE)


GUARD_NAME = "_refresh.lock"


def local_root(warehouse: str) -> Path | None:
    """The warehouse folder when it is on the local file system; None for any other storage."""
    if warehouse.startswith("file:"):
        return Path("/" + warehouse[len("file:") :].lstrip("/"))
    if "://" in warehouse or warehouse.startswith(("dbfs:", "/Volumes/", "/dbfs/")):
        return None
    return Path(warehouse)


@contextmanager
def local_guard(settings: Settings, run_id: str) -> Iterator[None]:
    """Holds `<warehouse>/_refresh.lock` (an exclusive `flock`) while a run writes.

    Only for a warehouse on the local file system (the embedded default), where two manual runs
    are easy to start by hand. The operating system releases the lock when the process ends,
    however it ends, so a killed run leaves nothing to clean up. A second run waits up to
    `ops.lock_wait_s`, then stops with the holder's run id. Elsewhere (object stores,
    Databricks volumes) there is no guard: the scheduler runs one refresh at a time
    (`max_concurrent_runs: 1` in the bundle, `max_active_runs=1` in the DAG, `flock` in the
    cron line), and Delta's optimistic concurrency rejects a conflicting commit.
    """
    root = local_root(settings.paths.warehouse)
    if root is None:
        yield
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / GUARD_NAME, "a+")  # noqa: SIM115 - held for the whole run
    except OSError as exc:
        raise SetupError(
            f"cannot use warehouse {settings.paths.warehouse}: {exc.strerror or exc}; "
            "set paths.warehouse to a writable folder"
        ) from None
    deadline = time.monotonic() + settings.ops.lock_wait_s
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown run"
                    raise WarehouseLocked(
                        f"another run is refreshing warehouse {settings.paths.warehouse} "
                        f"({holder}); wait for it to finish, or set ops.lock_wait_s to wait"
                    ) from None
                time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps({"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid()})
        )
        handle.flush()
        yield
    finally:
        handle.close()  # releases the flock
