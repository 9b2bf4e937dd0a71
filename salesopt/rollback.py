"""`salesopt rollback`: puts every table a run wrote back as it was before the run.

Every commit of a refresh carries its run id (`ops.tag_commits`), so each table's Delta history
says which versions a run wrote. For the run to undo, every warehouse table whose history holds
one of its commits is restored (Delta `RESTORE`) to the version just before the run's first
commit there; a table the run created is emptied (`DELETE`; its schema stays). The batch log
(`ops/ingest_batches`) is put back by appended rows (`_revert_batches`), so the next refresh
reads the run's landing files again. The `ops` tables are logs and never restored: the
rollback is appended to `ops/runs` as a run of its own (stage `rollback`, `rollback_of` = the
undone run). All or nothing: when a restore fails, the tables already restored are put back.

Refused when a commit after the run's first one that is still in effect, by another run or by
hand, changed one of those tables: restoring would undo that change too. The history is
replayed, so a later run that was itself rolled back no longer counts ("roll the later runs
back first" works), and a rerun under the same run id after a rollback is undone again.
`force` restores anyway and marks the runs it undid too. Maintenance commits (OPTIMIZE, VACUUM)
change no data and do not count; a VACUUM that removed the files of the version to restore
makes RESTORE fail, and the message says so.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import date

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from salesopt import ops
from salesopt.config import Settings
from salesopt.context import StageContext
from salesopt.errors import InputError, SalesoptError
from salesopt.io import delta
from salesopt.io.tables import Warehouse
from salesopt.maintain import list_tables
from salesopt.summary import StageReport

log = logging.getLogger(__name__)

# the `ops` layer holds logs, never restored (the batch log is put back by appended rows:
# `_revert_batches`)
LOG_LAYER = "ops"
ROLLBACK_PREFIX = "rollback-"  # run ids of rollbacks
DATA_NEUTRAL = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END"})


class RollbackRefused(SalesoptError):
    """A later write changed a table the run wrote; restoring would undo it too."""


@dataclass
class TableChange:
    """What one run did to one table, from the table's history."""

    table: str
    first: int | None  # the run's first commit still in effect (None: all undone already)
    later: list[str] = field(default_factory=list)  # writers in effect after it
    later_runs: list[str] = field(default_factory=list)  # their salesopt run ids


@dataclass(frozen=True)
class _Commit:
    version: int
    writer: str  # "run <id>" or a description of a write by hand
    run_id: str | None


def _writer(tag: dict[str, str], version: int, operation: str) -> str:
    if tag:
        return f"run {tag['run_id']}"
    return f"version {version} ({operation}, written outside salesopt)"


def in_effect(history: list[tuple[int, str, str | None, dict | None]]) -> tuple[list, set]:
    """Replays a table's history (version, operation, userMetadata, operationParameters):
    the commits whose changes are in the current version, and every run id seen.

    A RESTORE to version v puts back what was in effect at v; a rollback's DELETE of a table
    the undone run created puts back nothing; OPTIMIZE and VACUUM change no data.
    """
    live: list[_Commit] = []
    at: dict[int, list[_Commit]] = {}
    seen: set[str] = set()
    for version, operation, metadata, parameters in sorted(history, key=lambda h: h[0]):
        tag = ops.read_tag(metadata)
        if tag:
            seen.add(tag["run_id"])
        if operation == "RESTORE":
            target = str((parameters or {}).get("version"))
            if not target.isdigit() or int(target) not in at:
                raise RollbackRefused(
                    f"version {version} is a RESTORE to {target!r} (by timestamp, or to a "
                    "version older than the table's history): which runs it kept cannot be "
                    "told; restore this table by hand (RESTORE TABLE ... TO VERSION AS OF)"
                )
            live = list(at[int(target)])
        elif operation == "DELETE" and tag.get("rollback_of"):
            live = []  # a rollback emptied a table the undone run had created
        elif operation not in DATA_NEUTRAL:
            live = [*live, _Commit(version, _writer(tag, version, operation), tag.get("run_id"))]
        at[version] = live
    return live, seen


def changes_of(spark: SparkSession, wh: Warehouse, run_id: str) -> list[TableChange]:
    """Every table (but the logs) that holds a commit of `run_id`, with what came after it."""
    found = []
    for layer, name in list_tables(spark, wh):
        if layer == LOG_LAYER:
            continue
        history = (
            delta.history(spark, wh.path(layer, name))
            .select("version", "operation", "userMetadata", "operationParameters")
            .collect()
        )
        live, seen = in_effect([(int(h[0]), h[1], h[2], h[3]) for h in history])
        if run_id not in seen:
            continue
        mine = [c.version for c in live if c.run_id == run_id]
        change = TableChange(f"{layer}/{name}", first=min(mine) if mine else None)
        if change.first is not None:
            for commit in live:
                if commit.version > change.first and commit.run_id != run_id:
                    if commit.writer not in change.later:
                        change.later.append(commit.writer)
                    if commit.run_id and commit.run_id not in change.later_runs:
                        change.later_runs.append(commit.run_id)
        found.append(change)
    return found


def pick_run(spark: SparkSession, wh: Warehouse, run_id: str | None, as_of: date | None) -> tuple:
    """(run_id, as_of) of the run to undo: the one named, or the latest refresh of `as_of`."""
    where = f"ops/runs under {wh.root}"
    if not wh.exists(spark, *ops.RUNS_TABLE):
        raise InputError(f"no {where}: this warehouse has no run to roll back")
    runs = wh.read(spark, *ops.RUNS_TABLE).where(F.col("stage") != "rollback")
    if run_id is not None:
        row = runs.where(F.col("run_id") == run_id).select("as_of").first()
        if row is None:
            raise InputError(
                f"no run {run_id} in {where}; list the runs with "
                f"SELECT DISTINCT run_id, as_of FROM delta.`{wh.path(*ops.RUNS_TABLE)}`"
            )
        return run_id, row["as_of"]
    latest = (
        runs.where(F.col("as_of") == F.lit(as_of))
        .groupBy("run_id")
        .agg(F.min("started_at").alias("started"))
        .orderBy(F.desc("started"))
        .first()
    )
    if latest is None:
        raise InputError(f"no run for as_of {as_of} in {where}; pass --run-id")
    return latest["run_id"], as_of


def rollback(
    spark: SparkSession,
    settings: Settings,
    run_id: str | None = None,
    as_of: date | None = None,
    force: bool = False,
) -> dict:
    """Undoes one run (by id, or the latest run of `as_of`); returns what was restored."""
    if (run_id is None) == (as_of is None):
        raise InputError("name the run to roll back: --run-id R or --as-of YYYY-MM-DD")
    wh = Warehouse.from_settings(settings)
    new_id = f"{ROLLBACK_PREFIX}{ops.utc_now():%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
    with ops.local_guard(settings, new_id):
        target, target_as_of = pick_run(spark, wh, run_id, as_of)
        return _rollback(spark, settings, wh, new_id, target, target_as_of, force)


def _rollback(
    spark: SparkSession,
    settings: Settings,
    wh: Warehouse,
    new_id: str,
    target: str,
    as_of: date,
    force: bool,
) -> dict:
    started, t0 = ops.utc_now(), time.perf_counter()
    found = changes_of(spark, wh, target)
    blocked = [c for c in found if c.later]
    if blocked and not force:
        tables = "; ".join(f"{c.table} by {', '.join(c.later)}" for c in blocked)
        hint = "roll those runs back first (newest first), or pass --force"
        if any(not c.later_runs or len(c.later_runs) < len(c.later) for c in blocked) or any(
            r.startswith("maintain-") for c in blocked for r in c.later_runs
        ):  # maintenance or a write by hand cannot be rolled back on its own
            hint = "pass --force (a later maintenance run or write by hand cannot be rolled back)"
        raise RollbackRefused(
            f"cannot roll back run {target}: later writes changed its tables ({tables}); "
            f"{hint} to restore anyway (their changes to these tables are undone too)"
        )
    todo = [c for c in found if c.first is not None]
    overridden = sorted({run for c in todo for run in c.later_runs})
    if overridden:
        log.warning("--force: the changes of runs %s to these tables are undone too", overridden)
    result: dict = {
        "rollback_run_id": new_id,
        "rolled_back": target,
        "as_of": as_of.isoformat(),
        "tables": {},
        "already_restored": sorted(c.table for c in found if c.first is None),
        "also_undone": overridden,
    }
    ctx = StageContext(spark, settings, wh, as_of, new_id)
    if not todo:
        log.info("run %s: nothing to restore (already rolled back, or it wrote no table)", target)
        with ops.tag_commits(spark, new_id, rollback_of=target):
            _revert_batches(ctx, [target])  # idempotent: finishes a rollback killed after RESTORE
        return result
    versions: dict[str, int | None] = {}

    def record(status: str, message: str) -> None:
        seconds = round(time.perf_counter() - t0, 2)
        for undone in [target, *overridden]:  # each undone run is marked, for backfills
            report = StageReport("rollback", status, seconds, tables=versions, message=message)
            ops.record_stage(ctx, report, started, rollback_of=undone)

    undo: dict[str, int] = {}  # table -> its version before this rollback, to put back on error
    with ops.tag_commits(spark, new_id, rollback_of=target):
        try:
            for change in todo:
                assert change.first is not None
                layer, name = change.table.split("/")
                restored_to = None if change.first == 0 else change.first - 1
                current = wh.version(spark, layer, name)
                if restored_to is None:
                    # the run created the table: no earlier version
                    delta.delete(spark, wh.path(layer, name))
                else:
                    delta.restore(spark, wh.path(layer, name), restored_to)
                if current is not None:
                    undo[change.table] = current
                versions[change.table] = wh.version(spark, layer, name)
                action = "emptied (created by the run)" if restored_to is None else "restored"
                result["tables"][change.table] = {"to_version": restored_to, "action": action}
                log.info("%s: %s to its version before run %s", change.table, action, target)
            _revert_batches(ctx, [target, *overridden])
        except Exception as exc:
            failed = next(
                (t for t in (c.table for c in todo) if t not in versions), "the batch log"
            )
            kept = _put_back(spark, wh, undo)
            message = (
                f"cannot roll back run {target}: restoring {failed} failed "
                f"({(str(exc).splitlines() or [type(exc).__name__])[0][:200]}); "
                f"{kept}. If VACUUM removed the files of the version to restore (older than "
                "maintain.vacuum_retention_hours), restore that table from a backup"
            )
            versions.clear()
            record("failed", message)
            raise SalesoptError(message) from exc
    message = f"rolled back run {target}: {len(todo)} tables restored"
    if overridden:
        message += f" (--force: changes of {', '.join(overridden)} undone too)"
    record("succeeded", message)
    return result


def _put_back(spark: SparkSession, wh: Warehouse, undo: dict[str, int]) -> str:
    """Restores the tables a failed rollback already restored to their versions before it, so a
    rollback changes all of a run's tables or none; says what it did."""
    if not undo:
        return "no table was changed"
    left = []
    for table, version in undo.items():
        layer, name = table.split("/")
        try:
            delta.restore(spark, wh.path(layer, name), version)
        except Exception:  # reported by name below
            log.debug("could not put %s back to version %s", table, version, exc_info=True)
            left.append(f"{table} (now restored, was version {version})")
    if left:
        return "these tables could not be put back and stay rolled back: " + ", ".join(left)
    return f"the {len(undo)} tables restored before it were put back, nothing changed"


def _revert_batches(ctx: StageContext, runs: list[str]) -> None:
    """Puts the batch log back as it was before `runs`, by appending rows (it is a log).

    For each batch a run logged, the state it had before the run is appended again. A batch
    the run created, or found `pending`, is retired instead: a `rolled_back` row with no files.
    Bronze's idempotent append (`txnAppId`/`txnVersion` = the batch number) outlives a RESTORE,
    so Delta would skip a new append under that number; retired numbers are never used again,
    and the batch's files, listed by no batch now, are read into a new batch by the next
    refresh. A batch the run only cleaned or published keeps its lines in bronze and is
    cleaned again.
    """
    wh, spark = ctx.warehouse, ctx.spark
    if not wh.exists(spark, *ops.BATCHES_TABLE):
        return
    rows = wh.read(spark, *ops.BATCHES_TABLE).collect()  # small: a few rows per batch
    for seq in sorted({r["seq"] for r in rows if r["run_id"] in runs}):
        history = sorted((r for r in rows if r["seq"] == seq), key=lambda r: r["logged_at"])
        # only what came after the last rollback's rows: an attempt undone before is done with
        reverted = [i for i, r in enumerate(history) if r["run_id"].startswith(ROLLBACK_PREFIX)]
        start = reverted[-1] + 1 if reverted else 0
        first = next((i for i in range(start, len(history)) if history[i]["run_id"] in runs), None)
        if first is None:
            continue
        before = history[first - 1] if first else None
        latest = history[-1]
        if before is None or before["status"] == "pending":
            if latest["status"] != "rolled_back":
                ops.log_batch(ctx, ops.Batch(seq, ()), "rolled_back", 0)
                log.info("batch b%08d: retired; its files are read again by the next refresh", seq)
        elif (latest["status"], latest["files"]) != (before["status"], before["files"]):
            ops.log_batch(
                ctx, ops.Batch(seq, tuple(before["files"])), before["status"], before["lines"]
            )
