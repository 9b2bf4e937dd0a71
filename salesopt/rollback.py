"""`salesopt rollback`: puts every table a run wrote back as it was before the run.

Every commit of a refresh carries its run id (`ops.tag_commits`), so each table's Delta history
says which versions a run wrote. For the run to undo, every warehouse table whose history holds
one of its commits is restored (Delta `RESTORE`) to the version just before the run's first
commit there; a table the run created is emptied (`DELETE`; its schema stays). The batch log
(`ops/ingest_batches`) is restored with bronze and silver, so the next refresh reads the
run's landing files again. `ops/runs` and `ops/quality_results` are logs and never restored:
the rollback is appended to `ops/runs` as a run of its own (stage `rollback`, `rollback_of` =
the undone run).

Refused when a commit after the run's first one, by another run or by hand, changed one of
those tables: restoring would undo that change too. `force` restores anyway. Maintenance
commits (OPTIMIZE, VACUUM) change no data and do not count; a VACUUM that removed the files of
the version to restore makes RESTORE fail, and the message says so.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import date

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from salesopt import ops
from salesopt.config import Settings
from salesopt.context import StageContext
from salesopt.errors import InputError, SalesoptError
from salesopt.io.tables import Warehouse
from salesopt.maintain import list_tables
from salesopt.summary import StageReport

log = logging.getLogger(__name__)

LOG_TABLES = frozenset({ops.RUNS_TABLE, ("ops", "quality_results")})  # never restored
DATA_NEUTRAL = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END"})


class RollbackRefused(SalesoptError):
    """A later write changed a table the run wrote; restoring would undo it too."""


@dataclass
class TableChange:
    """What one run did to one table, from the table's history."""

    table: str
    first: int  # the run's first commit on the table
    later: list[str] = field(default_factory=list)  # other writers after it
    rolled_back_by: str | None = None  # a rollback of this run already restored the table


def _writer(tag: dict[str, str], version: int, operation: str) -> str:
    if tag:
        return f"run {tag['run_id']}"
    return f"version {version} ({operation}, written outside salesopt)"


def changes_of(spark: SparkSession, wh: Warehouse, run_id: str) -> list[TableChange]:
    """Every table (but the logs) that holds a commit of `run_id`, with what came after it."""
    found = []
    for layer, name in list_tables(spark, wh):
        if (layer, name) in LOG_TABLES:
            continue
        history = (
            DeltaTable.forPath(spark, wh.path(layer, name))
            .history()
            .select("version", "operation", "userMetadata")
            .collect()
        )
        commits = sorted((int(h[0]), h[1], ops.read_tag(h[2])) for h in history)
        mine = [v for v, _, tag in commits if tag.get("run_id") == run_id]
        if not mine:
            continue
        change = TableChange(f"{layer}/{name}", first=min(mine))
        for version, operation, tag in commits:
            if version <= change.first or tag.get("run_id") == run_id:
                continue
            if tag.get("rollback_of") == run_id:
                change.rolled_back_by = tag["run_id"]
            elif operation not in DATA_NEUTRAL:
                writer = _writer(tag, version, operation)
                if writer not in change.later:
                    change.later.append(writer)
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
    new_id = f"rollback-{ops.utc_now():%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
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
        raise RollbackRefused(
            f"cannot roll back run {target}: later writes changed its tables ({tables}); "
            "roll those runs back first, or pass --force to restore anyway (their changes "
            "to these tables are undone too)"
        )
    todo = [c for c in found if c.later or c.rolled_back_by is None]
    result: dict = {
        "rollback_run_id": new_id,
        "rolled_back": target,
        "as_of": as_of.isoformat(),
        "tables": {},
        "already_restored": sorted(c.table for c in found if c not in todo),
    }
    if not todo:
        log.info("run %s: nothing to restore (already rolled back, or it wrote no table)", target)
        return result
    versions: dict[str, int | None] = {}
    with ops.tag_commits(spark, new_id, rollback_of=target):
        for change in todo:
            layer, name = change.table.split("/")
            table = DeltaTable.forPath(spark, wh.path(layer, name))
            try:
                if change.first == 0:
                    table.delete()  # the run created the table: no earlier version
                else:
                    table.restoreToVersion(change.first - 1)
            except Exception as exc:
                raise SalesoptError(
                    f"cannot restore {change.table} to version {change.first - 1}: "
                    f"{str(exc).splitlines()[0][:200]}; if VACUUM removed that version's "
                    "files (older than maintain.vacuum_retention_hours), restore it from a "
                    "backup; the tables listed before it in this log were restored"
                ) from exc
            versions[change.table] = wh.version(spark, layer, name)
            action = "emptied (created by the run)" if change.first == 0 else "restored"
            restored_to = None if change.first == 0 else change.first - 1
            result["tables"][change.table] = {"to_version": restored_to, "action": action}
            log.info("%s: %s to its version before run %s", change.table, action, target)
    message = f"rolled back run {target}: {len(todo)} tables restored"
    report = StageReport(
        "rollback", "succeeded", round(time.perf_counter() - t0, 2), tables=versions,
        message=message,
    )  # fmt: skip
    ctx = StageContext(spark, settings, wh, as_of, new_id)
    ops.record_stage(ctx, report, started, rollback_of=target)
    return result
