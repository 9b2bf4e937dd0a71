"""`refresh`: runs the stages for one business date and records every stage in `ops/runs`.

Stages run in a fixed order; `stages=` selects a subset (their order is kept). Each stage is a
module with `run(ctx) -> StageResult`, registered in `STAGES`. A failing stage is recorded as
`failed` with its message and stops the run: nothing after it is written.

Concurrency: every write is idempotent per `as_of` (replaceWhere, MERGE, Delta's idempotent
appends), so a rerun after any failure gives the same tables. One refresh at a time writes a
warehouse: the scheduler serialises scheduled runs, `ops.local_guard` refuses a second manual
run on a local warehouse, and a commit that loses to a concurrent writer is rejected by Delta's
optimistic concurrency and reported as one line (`delta.exceptions`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timezone

import delta.exceptions.captured  # noqa: F401 - raises Delta's commit conflicts as typed errors
from delta import exceptions as delta_errors
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from salesopt import dims, gold, ingest, monitor, ops, silver, tracking
from salesopt.config import Settings
from salesopt.context import StageContext, StageResult
from salesopt.errors import ConfigError, InputError, SalesoptError, SetupError
from salesopt.forecast import stage as forecast_stage
from salesopt.io.tables import Warehouse
from salesopt.optimize import stage as optimize_stage
from salesopt.recommend import stage as recommend_stage
from salesopt.segment import stage as segment_stage
from salesopt.strategy import stage as strategy_stage
from salesopt.summary import RunSummary, StageReport

log = logging.getLogger(__name__)

STAGES: dict[str, Callable[[StageContext], StageResult]] = {
    "ingest": ingest.run,
    "silver": silver.run,
    "gold": gold.run,
    "segment": segment_stage.run,
    "recommend": recommend_stage.run,
    "forecast": forecast_stage.run,
    "optimize": optimize_stage.run,
    "strategy": strategy_stage.run,
    "monitor": monitor.run,
}
# The warehouse refresh proper (landing -> bronze -> silver -> gold): `--stages ingest,silver,gold`.
WAREHOUSE_STAGES: tuple[str, ...] = ("ingest", "silver", "gold")
# a commit that lost to a concurrent one: Delta's optimistic concurrency (none subclasses another)
COMMIT_CONFLICTS: tuple[type[Exception], ...] = (
    delta_errors.DeltaConcurrentModificationException, delta_errors.ConcurrentWriteException,
    delta_errors.MetadataChangedException, delta_errors.ProtocolChangedException,
    delta_errors.ConcurrentAppendException, delta_errors.ConcurrentDeleteReadException,
    delta_errors.ConcurrentDeleteDeleteException, delta_errors.ConcurrentTransactionException,
)  # fmt: skip
# the same conflicts as error conditions: over Spark Connect Delta's typed errors are not raised
CONFLICT_CONDITIONS = ("DELTA_CONCURRENT_", "DELTA_METADATA_CHANGED", "DELTA_PROTOCOL_CHANGED")


def is_commit_conflict(exc: BaseException) -> bool:
    """A commit that lost to a concurrent one, on a classic or a Spark Connect session."""
    if isinstance(exc, COMMIT_CONFLICTS):
        return True
    condition = exc.getCondition() if isinstance(exc, PySparkException) else None
    return bool(condition) and str(condition).startswith(CONFLICT_CONDITIONS)


def parse_stages(text: str | None) -> list[str]:
    """`a,b` -> [a, b] in pipeline order; unknown names fail with the list of known ones."""
    if not text:
        return list(STAGES)
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; known stages: {', '.join(STAGES)}")
    return [s for s in STAGES if s in wanted]


def new_run_id(as_of: date) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{as_of.isoformat()}_{stamp}_{uuid.uuid4().hex[:6]}"


_CHECKSUM = re.compile(r"ChecksumException: Checksum error: (\S+)")


def _bare(path: str) -> str:
    """A path without its scheme and outer slashes (a local one made absolute), to compare."""
    root = ops.local_root(path)
    if root is not None:
        return str(root.resolve()).strip("/")
    return path.split(":", 1)[-1].strip("/")


def _failure_message(exc: Exception, warehouse: str = "") -> str:
    text = str(exc)
    first = text.split("\n")[0][:300]
    checksum = _CHECKSUM.search(text)
    if checksum:
        path = checksum.group(1)
        folder, _, name = path.rpartition("/")
        changed = f"{path} no longer matches its checksum file {folder}/.{name}.crc"
        in_warehouse = bool(warehouse) and _bare(path).startswith(_bare(warehouse) + "/")
        if in_warehouse:  # a table's file: never accept an edited one
            return (
                f"{changed}: a warehouse file was changed after it was written; restore it "
                "from a backup or snapshot, or rebuild the table (rerun from the stage that "
                "writes it); do not edit files under the warehouse"
            )
        return (
            f"{changed}: the file was edited after it was written; if the edit is the "
            "intended content, delete that .crc file, else restore the file"
        )
    if is_commit_conflict(exc):
        return (
            f"a concurrent write to the same Delta table was committed first ({first}); "
            "run one refresh at a time, then rerun this as_of (reruns replace, never duplicate)"
        )
    return first


PROGRESS_SECONDS = 20.0  # a long stage logs a progress line this often


def _spark_tasks(spark: SparkSession) -> str:
    """ "; Spark tasks 12/40 done" for the running Spark stages, "" when unknown (Spark Connect
    has no status tracker)."""
    try:
        tracker = spark.sparkContext.statusTracker()
        found = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
    except Exception:  # progress is best effort, never a failure
        return ""
    infos = [i for i in found if i is not None]
    if not infos:
        return ""
    done, total = sum(i.numCompletedTasks for i in infos), sum(i.numTasks for i in infos)
    return f"; Spark tasks {done}/{total} done"


@contextlib.contextmanager
def progress(ctx: StageContext, name: str, every: float = PROGRESS_SECONDS) -> Iterator[None]:
    """Logs "stage <name>: still running (40s ...)" every `every` seconds while the block runs."""
    stop = threading.Event()
    t0 = time.perf_counter()

    def beat() -> None:
        while not stop.wait(every):
            elapsed = time.perf_counter() - t0
            log.info("stage %s: still running (%.0fs%s)", name, elapsed, _spark_tasks(ctx.spark))

    thread = threading.Thread(target=beat, name=f"progress-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_stage(ctx: StageContext, name: str, tracker: tracking.Tracker | None = None) -> StageReport:
    """Runs one stage, timing it and recording it in ops/runs whatever the outcome (and in
    MLflow through `tracker` when it succeeded)."""
    started = ops.utc_now()
    ctx.warehouse.reads.clear()
    t0 = time.perf_counter()
    log.info("stage %s: started (as_of=%s, run_id=%s)", name, ctx.as_of, ctx.run_id)
    try:
        with progress(ctx, name):
            result = STAGES[name](ctx)
    except Exception as exc:
        message = _failure_message(exc, ctx.settings.paths.warehouse)
        report = StageReport(name, "failed", round(time.perf_counter() - t0, 2), message=message)
        ops.record_stage(ctx, report, started)
        log.error("stage %s: failed after %.1fs: %s", name, report.seconds, message)
        if isinstance(exc, SalesoptError):
            raise
        raise SalesoptError(f"stage {name} failed: {message}") from exc
    report = StageReport(
        stage=name,
        status="succeeded",
        seconds=round(time.perf_counter() - t0, 2),
        rows_in=result.rows_in,
        rows_out=result.rows_out,
        tables=result.tables,
        summary=result.summary,
    )
    ops.record_stage(ctx, report, started)
    log.info("stage %s: done in %.1fs", name, report.seconds)
    if tracker is not None:
        tracker.stage(name, report, result, set(ctx.warehouse.reads))
    return report


def preflight(settings: Settings, stages: Sequence[str]) -> None:
    """Checks what a refresh can check without Spark, so a mistake costs no Spark start-up and
    writes nothing: the warehouse path is a folder (when local), the landing root has an
    orders/ folder (when local and ingest runs), the PII key is set (when silver runs)."""
    root = ops.local_root(settings.paths.warehouse)
    if root is not None and root.exists() and not root.is_dir():
        raise SetupError(
            f"the warehouse path {root} is a file, not a folder: point paths.warehouse "
            "(or --warehouse) at a folder"
        )
    landing = ops.local_root(settings.paths.landing)
    if "ingest" in stages and landing is not None and not (landing / "orders").is_dir():
        raise InputError(
            f"no orders folder at {landing / 'orders'}: point paths.landing (or --landing) at "
            "the landing root that holds orders/, customers/ and products/ "
            "(docs/source-contract.md)"
        )
    if "silver" in stages and not settings.demo:  # the demo key is logged when used
        dims.pii_key(settings)


def refresh(
    spark: SparkSession,
    settings: Settings,
    as_of: date,
    stages: Sequence[str] | None = None,
    run_id: str | None = None,
) -> RunSummary:
    """Refreshes the warehouse for `as_of`, stage by stage (`ops.local_guard` held throughout;
    every Delta commit tagged with the run id, `ops.tag_commits`; the models and metrics
    tracked in MLflow when it is installed, `salesopt.tracking`)."""
    selected = list(stages) if stages else list(STAGES)
    preflight(settings, selected)
    warehouse = Warehouse.from_settings(settings)
    ctx = StageContext(spark, settings, warehouse, as_of, run_id or new_run_id(as_of))
    t0 = time.perf_counter()
    with (
        ops.local_guard(settings, ctx.run_id),
        ops.tag_commits(spark, ctx.run_id),
        tracking.refresh_run(ctx, selected) as tracker,
    ):
        reports = [run_stage(ctx, name, tracker) for name in selected]
    return RunSummary(
        ctx.run_id, as_of.isoformat(), "succeeded", round(time.perf_counter() - t0, 2), reports
    )
