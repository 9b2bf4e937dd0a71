"""Bronze batches -> `silver/order_lines` (MERGE), `quarantine/orders_rejected`, dimensions.

For each bronze batch not yet cleaned (oldest first): parse, validate, check products, apply
configured expectations, quarantine the rejects, keep the latest version of each line, and MERGE
it into silver where it is newer than what silver holds. The batch is then logged `cleaned`.
Quarantine is written once per batch (a replay finds the batch's rows and skips the write) and
silver takes only newer versions on a stable key, so replaying a batch after a crash writes
nothing twice. Every raw line is counted once as accepted, quarantined or superseded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from salesopt import clean, dims, quality
from salesopt.config import CleanSettings
from salesopt.context import StageContext, StageResult
from salesopt.errors import QualityGateFailed
from salesopt.io import delta
from salesopt.io.tables import agg_row, materialized, sql_dates
from salesopt.ops import (
    BRONZE_ORDERS,
    ORDER_LINES,
    Batch,
    latest_batch_states,
    log_batch,
    utc_now,
)

log = logging.getLogger(__name__)

SILVER = ORDER_LINES
QUARANTINE = ("quarantine", "orders_rejected")
SOURCE_FILES = ("ops", "source_files")
SILVER_TABLE = "silver/order_lines"
_SOURCE_FILES_SCHEMA = (
    "batch_id string, source_file string, lines long, quarantined long, rejected_share double, "
    "top_reason string, as_of date, run_id string, recorded_at timestamp"
)


@dataclass
class Reconciliation:
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    superseded: int = 0
    rescued: int = 0  # accepted-or-superseded lines carrying unknown fields (schema drift)
    reasons: dict[str, int] = field(default_factory=dict)  # quarantined lines per reason code
    findings: list[str] = field(default_factory=list)  # rejected shares above their limits

    def add(self, other: Reconciliation) -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.quarantined += other.quarantined
        self.superseded += other.superseded
        self.rescued += other.rescued
        for reason, n in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n
        self.findings += other.findings

    @property
    def balanced(self) -> bool:
        return self.read == self.accepted + self.quarantined + self.superseded

    def to_dict(self) -> dict[str, object]:
        return {
            "raw_lines_read": self.read,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "superseded_duplicates": self.superseded,
            "balanced": self.balanced,
            "rows_with_rescued_fields": self.rescued,
            "rejected_share_findings": self.findings,
        }


def classify(ctx: StageContext, raw: DataFrame, products: DataFrame) -> DataFrame:
    """Raw lines with typed fields and `_reason` (null = valid). Grain: one row per raw line."""
    cfg = ctx.settings.clean
    typed = clean.with_typed_fields(clean.parse_records(raw, ctx.settings.ingest.format))
    reasoned = clean.with_reason(typed, ctx.as_of, cfg.max_future_days, cfg.late_window_days)
    checked = clean.with_product_check(reasoned, products, cfg.unknown_product)
    # one projection, no union of branches: each branch of a union would recompute the parse
    # from bronze; CASE evaluates the rules only on rows that passed every earlier check
    rule_reason = quality.quarantine_reason(SILVER_TABLE, ctx.settings.quality.rules)
    return (
        checked.withColumn(
            "_reason",
            F.when(F.col("_reason").isNull(), rule_reason).otherwise(F.col("_reason")),
        )
        # the raw text is kept for quarantine only: an accepted line's fields are its columns
        .withColumn("value", F.when(F.col("_reason").isNotNull(), F.col("value")))
        .drop("_fields", "_parsed", "_type_error", *clean.RAW_COLUMNS)  # parsing intermediates
    )


def file_lines(classified: DataFrame) -> DataFrame:
    """Per source file: lines read, lines quarantined and the most frequent reason.
    Grain: one row per `_source_file` of the batch."""
    return classified.groupBy("_source_file").agg(
        F.count(F.lit(1)).alias("lines"),
        F.count("_reason").alias("quarantined"),
        F.mode("_reason", deterministic=True).alias("top_reason"),
    )


@dataclass(frozen=True)
class FileLines:
    source_file: str
    lines: int
    quarantined: int
    top_reason: str | None

    @property
    def share(self) -> float:
        return self.quarantined / self.lines if self.lines else 0.0


def rejected_share_findings(batch_id: str, files: list[FileLines], cfg: CleanSettings) -> list[str]:
    """One sentence per file, and for the batch, whose rejected share is above its limit
    (files and batches under `rejected_share_min_lines` lines are not judged)."""
    found = [
        f"{f.source_file}: {f.quarantined} of {f.lines} lines rejected ({f.share:.0%}, mostly "
        f"{f.top_reason}), above clean.max_rejected_share_per_file = "
        f"{cfg.max_rejected_share_per_file:g}"
        for f in sorted(files, key=lambda f: (-f.share, f.source_file))
        if f.lines >= cfg.rejected_share_min_lines and f.share > cfg.max_rejected_share_per_file
    ]
    lines = sum(f.lines for f in files)
    rejected = sum(f.quarantined for f in files)
    judged = lines >= cfg.rejected_share_min_lines
    if judged and rejected / lines > cfg.max_rejected_share_per_batch:
        found.append(
            f"batch {batch_id}: {rejected} of {lines} lines rejected ({rejected / lines:.0%}), "
            f"above clean.max_rejected_share_per_batch = {cfg.max_rejected_share_per_batch:g}"
        )
    return found


def _check_files(
    ctx: StageContext, batch_id: str, classified: DataFrame, results: list[quality.RuleResult]
) -> list[str]:
    """Records the batch's lines per source file in ops/source_files, then applies the
    rejected-share limits: `warn` logs each finding, `fail` records the stage's quality
    `results` so far and stops before the batch is written. Returns the findings."""
    files = [
        FileLines(r["_source_file"], int(r["lines"]), int(r["quarantined"]), r["top_reason"])
        for r in file_lines(classified).collect()
    ]
    recorded_at = utc_now()
    rows = [
        (batch_id, f.source_file, f.lines, f.quarantined, round(f.share, 6), f.top_reason,
         ctx.as_of, ctx.run_id, recorded_at)
        for f in files
    ]  # fmt: skip
    if rows:
        ctx.warehouse.append(ctx.spark.createDataFrame(rows, _SOURCE_FILES_SCHEMA), *SOURCE_FILES)
    cfg = ctx.settings.clean
    findings = rejected_share_findings(batch_id, files, cfg)
    if findings and cfg.rejected_share_action == "fail":
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        quality.record(ctx.spark, ctx.warehouse, results, ctx.run_id, ctx.as_of)
        raise QualityGateFailed(
            f"{findings[0]}{more}: nothing of batch {batch_id} was written. The batch is in "
            "bronze already, so removing the landing file does not change it: check the file "
            "(lines per file are in ops/source_files), then rerun with --set "
            "clean.rejected_share_action=warn to load the batch with those lines quarantined, "
            "and deliver any corrected file under a new name"
        )
    for finding in findings:
        log.warning("%s (clean.rejected_share_action = warn: loaded)", finding)
    return findings


def _write_quarantine(
    ctx: StageContext, rejected: DataFrame, batch_id: str, quarantined: int
) -> None:
    """Appends the batch's `quarantined` rejected lines, unless an earlier attempt already did.

    One commit holds all of a batch's rejected lines, so quarantine holds either all of them or
    none: a replay after a crash (the batch is still `ingested`) finds them and writes nothing.
    The check reads only the batch's own files (the literal `_batch_id` and file statistics),
    which with the append costs less than an insert-only MERGE on the line key.
    """
    wh = ctx.warehouse
    rows = clean.quarantine_rows(rejected, ctx.as_of, ctx.run_id)
    if not wh.exists(ctx.spark, *QUARANTINE):
        wh.overwrite(rows, *QUARANTINE)  # the table exists after every cleaned batch
        return
    # one action: file statistics skip every other batch's files, so a new batch counts nothing
    found = wh.read(ctx.spark, *QUARANTINE).where(F.col("_batch_id") == F.lit(batch_id)).count()
    if found:
        log.warning(
            "batch %s: quarantine already holds its %d rejected lines (written by an interrupted "
            "earlier attempt); not written again", batch_id, found,
        )  # fmt: skip
        if found != quarantined:
            log.warning(
                "batch %s: this attempt rejected %d lines, the earlier one %d (the product "
                "dimension or as_of changed between the attempts); quarantine keeps the earlier "
                "attempt's lines", batch_id, quarantined, found,
            )  # fmt: skip
        return
    if quarantined:
        wh.append(rows, *QUARANTINE)


def _merge_silver(ctx: StageContext, winners: DataFrame, dates: list[date]) -> tuple[int, int]:
    """Writes batch winners into silver where newer; returns (winners, how many lost to silver).

    `dates` are the batch's order dates (bounded by the calendar, not by the lines). A line
    keeps its order's date across versions, so both the lookup of existing versions and the
    MERGE are bounded to those dates (a batch's late lines leave gaps in its date range):
    partition pruning keeps the cost of a refresh proportional to the new data, not to the
    history. Lines whose key silver does not hold (new days, late lines) are appended (no join
    against the target, one file per order date); newer versions of lines silver holds are then
    MERGEd, bounded to their own order dates, so only those dates' files are rewritten. A row
    that silver already holds from this same batch was written by an interrupted earlier attempt
    (between or after the two commits): it counts as accepted, not as superseded, and is not
    written again.
    """
    wh = ctx.warehouse
    if not wh.exists(ctx.spark, *SILVER):
        wh.overwrite(winners.limit(0), *SILVER, partition_by=("order_date",))
    in_range = f"order_date IN ({sql_dates(dates)})"
    # the newest version silver holds per key in those dates (one row per key, so the
    # comparison below has exactly one row per winner even if a key sits on two dates)
    latest = Window.partitionBy(*clean.KEY).orderBy(
        F.col("_t_updated").desc(), F.col("_t_ingested").desc()
    )
    silver = (
        wh.read(ctx.spark, *SILVER)
        .where(in_range)
        .select(
            *clean.KEY,
            F.col("updated_at").alias("_t_updated"),
            F.col("_ingested_at").alias("_t_ingested"),
            F.col("_batch_id").alias("_t_batch"),
        )
        .withColumn("_t_rank", F.row_number().over(latest))
        .where(F.col("_t_rank") == 1)
        .drop("_t_rank")
    )
    newer = (
        (F.col("_t_updated").isNull())
        | (F.col("updated_at") > F.col("_t_updated"))
        | (
            (F.col("updated_at") == F.col("_t_updated"))
            & (F.col("_ingested_at") > F.col("_t_ingested"))
        )
    )
    applied = F.coalesce(F.col("_t_batch") == F.col("_batch_id"), F.lit(False))
    compared = (
        winners.join(silver, on=list(clean.KEY), how="left")
        .withColumn("_newer", newer & ~applied)
        .withColumn("_applied", applied)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    new_keys = F.col("_newer") & F.col("_t_updated").isNull()  # silver holds no version
    updates = F.col("_newer") & F.col("_t_updated").isNotNull()  # a newer version
    stats = agg_row(
        compared.agg(
            F.count(F.lit(1)).alias("winners"),
            F.count(F.when(~F.col("_newer") & ~F.col("_applied"), F.lit(1))).alias("lost"),
            F.count(F.when(F.col("_applied"), F.lit(1))).alias("applied"),
            F.count(F.when(new_keys, F.lit(1))).alias("new"),
            F.array_sort(F.collect_set(F.when(updates, F.col("order_date")))).alias("updated"),
        )
    )
    if stats["applied"]:
        log.warning(
            "%d lines of this batch are already in silver (written by an interrupted earlier "
            "attempt); they count as accepted and are not written again", stats["applied"],
        )  # fmt: skip
    source = compared.drop("_t_ingested", "_t_batch", "_applied")
    if stats["new"]:  # keys silver does not hold: appended, no join with the target
        (
            source.where(new_keys)
            .drop("_t_updated", "_newer")
            .repartition("order_date")
            .write.format("delta")
            .mode("append")
            .option("mergeSchema", "true")  # a table from before store_id / promo gains them
            .save(wh.path(*SILVER))
        )
    if stats["updated"]:  # newer versions of lines silver holds: MERGEd in their dates only
        condition = (
            "t.order_id = s.order_id AND t.line_no = s.line_no"
            f" AND t.order_date IN ({sql_dates(stats['updated'])})"
        )
        delta.merge(
            ctx.spark,
            wh.path(*SILVER),
            materialized(source.where(updates).drop("_t_updated", "_newer")),
            on=condition,
            matched_update_if="s.updated_at >= t.updated_at",
            schema_evolution=True,
        )
    compared.unpersist()
    return int(stats["winners"]), int(stats["lost"])


def clean_batch(
    ctx: StageContext, batch_id: str, products: DataFrame, results: list[quality.RuleResult]
) -> Reconciliation:
    """Cleans one bronze batch into silver and quarantine; returns its reconciliation.

    The batch's quality results are added to `results` (the stage's, recorded once at its end).
    A failing `fail` rule records `results` and raises QualityGateFailed before anything of the
    batch is written.
    """
    raw = ctx.warehouse.read(ctx.spark, *BRONZE_ORDERS).where(F.col("_batch_id") == batch_id)
    classified = classify(ctx, raw, products).persist(StorageLevel.MEMORY_AND_DISK)
    valid = clean.normalised(classified.where(F.col("_reason").isNull()))
    batch_results = quality.evaluate(valid, SILVER_TABLE, ctx.settings.quality.rules)
    results.extend(batch_results)
    quality.enforce_recorded(
        ctx.spark, ctx.warehouse, batch_results, results, ctx.run_id, ctx.as_of
    )
    codes = [
        *clean.REASON_CODES,
        *quality.quarantine_codes(SILVER_TABLE, ctx.settings.quality.rules),
    ]
    accepted = F.col("_reason").isNull()
    counts = agg_row(
        classified.agg(
            F.count(F.lit(1)).alias("read"),
            F.count("_reason").alias("quarantined"),
            F.count(F.when(accepted, F.col("_rescued_data"))).alias("rescued"),
            # the order dates of the valid lines bound silver's lookup and MERGE
            F.array_sort(F.collect_set(F.when(accepted, F.to_date("order_ts")))).alias("dates"),
            *[
                F.count(F.when(F.col("_reason") == code, F.lit(1))).alias(f"_reason{i}")
                for i, code in enumerate(codes)
            ],
        )
    )
    findings = _check_files(ctx, batch_id, classified, results)
    _write_quarantine(
        ctx, classified.where(F.col("_reason").isNotNull()), batch_id, int(counts["quarantined"])
    )
    # the version ranking runs once, inside the comparison with silver that `_merge_silver`
    # keeps for its counts and writes; its winners are counted there
    ranked = clean.rank_versions(valid)
    winners = ranked.where(F.col("_version_rank") == 1).drop("_version_rank")
    n_winners = lost_to_silver = 0
    if counts["dates"]:
        n_winners, lost_to_silver = _merge_silver(ctx, winners, list(counts["dates"]))
    rec = Reconciliation(
        read=int(counts["read"]),
        quarantined=int(counts["quarantined"]),
        rescued=int(counts["rescued"]),
        reasons={code: n for i, code in enumerate(codes) if (n := int(counts[f"_reason{i}"]))},
    )
    if sum(rec.reasons.values()) != rec.quarantined:  # a reason code missing from the list
        raise AssertionError(f"batch {batch_id}: quarantine reasons {rec.reasons} do not add up")
    if rec.rescued:
        log.warning(
            "batch %s: %d lines carry unknown fields, kept in _rescued_data", batch_id, rec.rescued
        )
    valid_lines = rec.read - rec.quarantined
    rec.superseded = (valid_lines - n_winners) + lost_to_silver
    if not 0 <= n_winners <= valid_lines or not 0 <= rec.superseded <= valid_lines:
        raise AssertionError(
            f"batch {batch_id}: {n_winners} winners and {rec.superseded} superseded lines do not "
            f"fit its {valid_lines} valid lines"
        )
    rec.accepted = rec.read - rec.quarantined - rec.superseded
    rec.findings = findings
    classified.unpersist()
    return rec


def run(ctx: StageContext) -> StageResult:
    """Refreshes dimensions, then cleans every ingested-but-not-cleaned batch into silver."""
    wh = ctx.warehouse
    tables, loads = dims.refresh_dims(ctx.spark, ctx.settings, wh, ctx.run_id)
    products = wh.read(ctx.spark, "silver", "products")
    todo = [s for s in latest_batch_states(ctx) if s["status"] == "ingested"]
    total = Reconciliation()
    per_batch = []
    results = [load.key_result(table) for table, load in loads.items()]
    for state in todo:
        log.info("cleaning batch %s (%s lines)", state["batch_id"], state["lines"])
        rec = clean_batch(ctx, state["batch_id"], products, results)
        total.add(rec)
        per_batch.append({"batch_id": state["batch_id"], **rec.to_dict()})
        log_batch(ctx, Batch(seq=state["seq"], files=tuple(state["files"])), "cleaned", rec.read)
    quality.record(ctx.spark, wh, results, ctx.run_id, ctx.as_of)
    if not total.balanced:
        raise AssertionError(f"reconciliation does not balance: {total.to_dict()}")
    tables[SILVER_TABLE] = wh.version(ctx.spark, *SILVER)
    tables["quarantine/orders_rejected"] = wh.version(ctx.spark, *QUARANTINE)
    log.info(
        "reconciliation: %d raw lines read = %d accepted + %d quarantined + %d superseded",
        total.read, total.accepted, total.quarantined, total.superseded,
    )  # fmt: skip
    return StageResult(
        tables=tables,
        rows_in=total.read,
        rows_out={SILVER_TABLE: total.accepted, "quarantine/orders_rejected": total.quarantined},
        summary={
            "reconciliation": total.to_dict(),
            "quarantine_reasons": dict(sorted(total.reasons.items())),
            "batches": per_batch,
            "dimensions": {table: load.to_dict() for table, load in loads.items()},
        },
    )
