"""Silver -> gold: sales history tables (replaced by changed period) and as_of snapshots.

`sales_daily` is recomputed only for the order dates, and `sales_weekly` only for the weeks,
touched by batches that were cleaned but not yet published; those periods' rows are replaced
(`replaceWhere` on the month partitions); the batches are then logged `published`. A crash
between silver and gold therefore leaves those batches unpublished, and the next run publishes
them. `customer_features` and `interactions` are plain snapshot tables: every run computes the
complete snapshot of everything up to `as_of` and replaces that `as_of` slice, so
`WHERE as_of = D` returns the whole snapshot for D to any Delta reader
(docs/decisions/0008-plain-snapshot-tables.md).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from salesopt import features, quality, sales
from salesopt.context import StageContext, StageResult
from salesopt.io.tables import Warehouse, agg_row, sql_dates
from salesopt.ops import ORDER_LINES as SILVER
from salesopt.ops import Batch, latest_batch_states, log_batch

log = logging.getLogger(__name__)


# sales history table -> its period column; both are partitioned by the period's month
HISTORY = {"sales_daily": "date", "sales_weekly": "week_start"}
MONTH = "month"


def _changed_dates(lines: DataFrame, batch_ids: list[str]) -> DataFrame:
    """Order dates touched by the given batches. Grain: one row per date."""
    return lines.where(F.col("_batch_id").isin(batch_ids)).select("order_date").distinct()


def _history_is_current(ctx: StageContext) -> bool:
    """Both sales history tables exist in the month-partitioned layout."""
    wh = ctx.warehouse
    return all(
        wh.exists(ctx.spark, "gold", name) and MONTH in wh.read(ctx.spark, "gold", name).columns
        for name in HISTORY
    )


def _write_history(
    ctx: StageContext, rows: DataFrame, name: str, changed: list[date] | None
) -> int | None:
    """Writes a sales history table: whole (`changed` None), or replaces the changed periods.

    Partitioned by `month` (first day of the period's month), one file per month written, so a
    daily update rewrites only the months it changes.
    """
    period = HISTORY[name]
    rows = rows.withColumn(MONTH, F.trunc(period, "month")).repartition(MONTH)
    if changed is None:
        return ctx.warehouse.overwrite(rows, "gold", name, partition_by=(MONTH,))
    months = sorted({p.replace(day=1) for p in changed})
    predicate = f"{MONTH} IN ({sql_dates(months)}) AND {period} IN ({sql_dates(changed)})"
    return ctx.warehouse.replace_where(rows, "gold", name, predicate, partition_by=(MONTH,))


def _publish_sales(
    ctx: StageContext, lines: DataFrame, batch_ids: list[str], current: bool
) -> tuple[dict[str, int | None], list[quality.RuleResult]]:
    """Writes the sales history tables for the batches' changed periods.

    When not `current` (`_history_is_current`) both tables are built whole from all of silver.
    Returns the versions written and the quality results, which the snapshot write records with
    its own in one append; a failing `fail` rule is recorded here before it stops the run. A
    crash before that append leaves the batches unpublished, so the next run evaluates and
    records their periods again.
    """
    wh = ctx.warehouse
    if not current:
        changed_days = changed_weeks = None
        day_scope = week_scope = lines
        log.info("building the sales history tables from all of silver")
    else:
        # one row per touched date: bounded by the calendar, not by the lines
        changed_days = sorted(r[0] for r in _changed_dates(lines, batch_ids).collect())
        if not changed_days:
            log.info("no sales history change: the batches added no accepted line")
            return {}, []
        changed_weeks = sorted({d - timedelta(days=d.weekday()) for d in changed_days})
        # each changed period is recomputed from all its lines, so a period left without
        # lines loses its row; a week needs the lines of its seven days
        week_days = [w + timedelta(days=d) for w in changed_weeks for d in range(7)]
        day_scope = lines.where(F.col("order_date").isin(changed_days))
        week_scope = lines.where(F.col("order_date").isin(week_days))
        log.info(
            "updating sales history for %d changed days in %d weeks",
            len(changed_days), len(changed_weeks),
        )  # fmt: skip
    # persisted: the quality rules and the write both read them (aggregated from silver once)
    daily = features.with_run(sales.sales_daily(day_scope), ctx.as_of, ctx.run_id)
    weekly = features.with_run(sales.sales_weekly(week_scope), ctx.as_of, ctx.run_id)
    daily, weekly = (df.persist(StorageLevel.MEMORY_AND_DISK) for df in (daily, weekly))
    rules = ctx.settings.quality.rules
    results = quality.evaluate(daily, "gold/sales_daily", rules) + quality.evaluate(
        weekly, "gold/sales_weekly", rules
    )
    quality.enforce_recorded(ctx.spark, wh, results, results, ctx.run_id, ctx.as_of)
    versions = {
        "gold/sales_daily": _write_history(ctx, daily, "sales_daily", changed_days),
        "gold/sales_weekly": _write_history(ctx, weekly, "sales_weekly", changed_weeks),
    }
    daily.unpersist()
    weekly.unpersist()
    return versions, results


# the layout of an earlier release (only changed keys per as_of); rewritten on first write
_CHAINED_MARKER = "snapshot_kind"


def snapshot_frames(lines: DataFrame, ctx: StageContext) -> dict[str, DataFrame]:
    """The complete `as_of` snapshots from silver lines, by table name (without bookkeeping
    columns: `write_snapshots` adds `as_of` and `run_id`)."""
    half_life = ctx.settings.features.recency_half_life_days
    return {
        "customer_features": features.customer_features(lines, ctx.as_of),
        "interactions": features.interactions(lines, ctx.as_of, half_life),
    }


def _write_snapshot(wh: Warehouse, rows: DataFrame, name: str, ctx: StageContext) -> int | None:
    """Replaces the `as_of` slice of a snapshot table with `rows` (one Delta commit).

    A table still in an earlier release's change-chain layout (a `snapshot_kind` column: each
    slice held only changed keys) is replaced whole by this complete slice; earlier dates come
    back by re-running them (a backfill), which now writes complete slices too.
    """
    if (
        wh.exists(ctx.spark, "gold", name)
        and _CHAINED_MARKER in wh.read(ctx.spark, "gold", name).columns
    ):
        log.warning(
            "gold/%s is in the change-chain layout of an earlier release: rewriting it with the "
            "complete snapshot for %s only; re-run earlier dates to restore their slices",
            name, ctx.as_of,
        )  # fmt: skip
        return wh.overwrite(rows, "gold", name, partition_by=("as_of",))
    return wh.write_slice(rows, "gold", name, ctx.as_of)


def write_snapshots(
    ctx: StageContext, lines: DataFrame, recorded_with: list[quality.RuleResult]
) -> dict[str, tuple[int | None, int]]:
    """Computes and writes the complete `as_of` slice of every snapshot table.

    `lines` is silver as the run sees it. Quality rules run on the rows about to be written; a
    failing `fail` rule stops before either table is written. `recorded_with` (the sales
    history's results) are appended to `ops/quality_results` with these in one commit.
    Returns (version written, rows) per table.
    """
    wh = ctx.warehouse
    scoped = features.lines_up_to(lines, ctx.as_of).select(*features.SNAPSHOT_INPUT)
    scoped = scoped.persist(StorageLevel.MEMORY_AND_DISK)  # both snapshots scan it
    frames = {
        name: features.with_run(frame, ctx.as_of, ctx.run_id).persist(StorageLevel.MEMORY_AND_DISK)
        for name, frame in snapshot_frames(scoped, ctx).items()
    }
    rules = ctx.settings.quality.rules
    results = [r for name, f in frames.items() for r in quality.evaluate(f, f"gold/{name}", rules)]
    quality.record(ctx.spark, wh, [*recorded_with, *results], ctx.run_id, ctx.as_of)
    quality.enforce(results)
    written: dict[str, tuple[int | None, int]] = {}
    for name, frame in frames.items():
        n = frame.count()
        written[name] = (_write_snapshot(wh, frame, name, ctx), n)
        frame.unpersist()
        log.info("gold/%s: %d rows for as_of %s", name, n, ctx.as_of)
    scoped.unpersist()
    return written


def silver_version_for(ctx: StageContext) -> int | None:
    """The silver version a run on `as_of` saw, when a later as_of has been processed since.

    Returns None when no later as_of exists (the normal daily run: current silver is right).
    For a backfill it is the silver version written by the last silver stage for an as_of on or
    before this one that ran before the first later as_of; Delta time travel then gives the
    lines exactly as that run saw them (corrections delivered later are not visible).
    """
    wh = ctx.warehouse
    if not wh.exists(ctx.spark, "ops", "runs"):
        return None
    log_df = wh.read(ctx.spark, "ops", "runs")
    runs = log_df.where(
        (F.col("stage") == "silver")
        & (F.col("status") == "succeeded")
        & (F.col("run_id") != ctx.run_id)
    )
    if "rollback_of" in log_df.columns:  # a rolled-back run's silver is no run's view
        rollbacks = (
            log_df.where((F.col("stage") == "rollback") & (F.col("status") == "succeeded"))
            .select("rollback_of")
            .collect()
        )
        runs = runs.where(~F.col("run_id").isin([r[0] for r in rollbacks]))
    first_later = agg_row(runs.where(F.col("as_of") > F.lit(ctx.as_of)).agg(F.min("started_at")))[0]
    if first_later is None:
        return None
    earlier = (
        runs.where(
            (F.col("as_of") <= F.lit(ctx.as_of)) & (F.col("started_at") < F.lit(first_later))
        )
        .orderBy(F.col("started_at").desc())
        .select(F.col("tables")["silver/order_lines"].alias("version"))
        .first()
    )
    if earlier is None or earlier["version"] is None:
        log.warning(
            "backfill for %s: no earlier silver version recorded; using current silver "
            "(corrections delivered after %s are included)", ctx.as_of, ctx.as_of,
        )  # fmt: skip
        return None
    return int(earlier["version"])


def run(ctx: StageContext) -> StageResult:
    """Publishes unpublished batches to the sales history and writes the as_of snapshots."""
    wh = ctx.warehouse
    if not wh.exists(ctx.spark, *SILVER):
        log.warning("silver/order_lines does not exist yet: nothing to publish")
        return StageResult(summary={"published_batches": 0})
    lines = wh.read(ctx.spark, *SILVER)
    todo = [s for s in latest_batch_states(ctx) if s["status"] == "cleaned"]
    tables: dict[str, int | None] = {}
    sales_results: list[quality.RuleResult] = []
    current = _history_is_current(ctx)
    if todo or not current:
        versions, sales_results = _publish_sales(ctx, lines, [s["batch_id"] for s in todo], current)
        tables.update(versions)
    version = silver_version_for(ctx)
    if version is not None:
        log.info("backfill for %s: snapshots read silver version %d", ctx.as_of, version)
        lines = ctx.spark.read.format("delta").option("versionAsOf", version).load(wh.path(*SILVER))
    written = write_snapshots(ctx, lines, recorded_with=sales_results)
    tables.update({f"gold/{name}": v for name, (v, _n) in written.items()})
    for state in todo:
        log_batch(
            ctx, Batch(seq=state["seq"], files=tuple(state["files"])), "published", state["lines"]
        )
    return StageResult(
        tables=tables,
        rows_out={f"gold/{name}": n for name, (_v, n) in written.items()},
        summary={
            "published_batches": len(todo),
            "silver_version_read": version,
            "snapshot_rows": {name: n for name, (_v, n) in written.items()},
        },
    )
