"""`as_of` snapshots stored as change chains: `gold/customer_features` and `gold/interactions`.

A snapshot is the state of every key (customer; customer x product) computed from the silver
lines on or before `as_of`. Storing a full copy per business date would make every daily refresh
rewrite the whole snapshot (5.8 M interaction rows at 10 M lines). Instead each table is
partitioned by `as_of` and each slice is one of:

- `full`: every key's state at that `as_of`;
- `change`: only the keys whose lines changed since the previous slice (new lines, corrections,
  lines whose order date entered the window), with `is_deleted` tombstones for keys that no
  longer have any line.

The snapshot at a date D is the newest row per key among the slices from the latest `full` slice
on or before D up to D, without tombstones; the date-relative columns (recency, tenure, decayed
strength) are then derived for D (`salesopt.features.derive_*`). `Warehouse.read_as_of` does this,
so every reader gets the same rows a full recomputation for D would give.

Changed keys come from the Delta change data feed of `silver/order_lines` between the silver
version the previous slice read (`source_version`) and the one this run reads, plus the lines
dated after the previous slice's `as_of`. A `full` slice is written instead when there is no
earlier slice, when the feed cannot cover that range (feed not enabled then, or its files
vacuumed), when a parameter of the state changed (`half_life_days`), when the change slices
since the last full one reach `features.snapshot_rebase_share` of its rows (which bounds what a
reader resolves), and for backfills (an `as_of` before an existing slice). A backfill first
turns the next later slice into a `full` one when it was a change slice, so that every later
snapshot reads exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark import StorageLevel
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from salesopt import features, quality
from salesopt.config import Settings
from salesopt.io.tables import Warehouse, agg_row

log = logging.getLogger(__name__)

FULL, CHANGE = "full", "change"
BOOKKEEPING = ("as_of", "run_id", "snapshot_kind", "source_version", "is_deleted")
LAYER = "gold"


@dataclass(frozen=True)
class Spec:
    """One snapshot table: its keys, state columns and how its state is computed and derived."""

    name: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    state: Callable[[DataFrame, date, Settings], DataFrame]
    derive: Callable[[DataFrame, date, tuple[str, ...]], DataFrame]
    params: Callable[[Settings], dict[str, float]]


def _interaction_state(lines: DataFrame, as_of: date, settings: Settings) -> DataFrame:
    return features.interaction_state(lines, as_of, settings.features.recency_half_life_days)


def _derive_interactions(state: DataFrame, as_of: date, keep: tuple[str, ...]) -> DataFrame:
    return features.derive_interactions(state, as_of, F.col("half_life_days"), keep)


SPECS: dict[str, Spec] = {
    "customer_features": Spec(
        name="customer_features",
        keys=("customer_id",),
        columns=features.CUSTOMER_STATE,
        state=lambda lines, as_of, _s: features.customer_state(lines, as_of),
        derive=features.derive_customer_features,
        params=lambda _s: {},
    ),
    "interactions": Spec(
        name="interactions",
        keys=("customer_id", "product_id"),
        columns=features.INTERACTION_STATE,
        state=_interaction_state,
        derive=_derive_interactions,
        params=lambda s: {"half_life_days": float(s.features.recency_half_life_days)},
    ),
}


@dataclass(frozen=True)
class Slice:
    as_of: date
    kind: str
    source_version: int | None
    rows: int
    params: dict[str, Any]


@dataclass(frozen=True)
class Written:
    """What `write_all` did for one table."""

    kind: str
    reason: str
    rows_written: int
    version: int | None

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "reason": self.reason, "rows_written": self.rows_written}


def is_chained(layer: str, name: str) -> bool:
    return layer == LAYER and name in SPECS


def _param_columns(spec: Spec) -> list[str]:
    return list(spec.params(Settings()).keys())


def slices(spark: SparkSession, wh: Warehouse, spec: Spec) -> list[Slice]:
    """The table's slices, oldest first (one small aggregate over the bookkeeping columns)."""
    if not wh.exists(spark, LAYER, spec.name):
        return []
    params = _param_columns(spec)
    rows = (
        wh.read(spark, LAYER, spec.name)
        .groupBy("as_of")
        .agg(
            F.first("snapshot_kind").alias("kind"),
            F.first("source_version").alias("source_version"),
            F.count(F.lit(1)).alias("rows"),
            *[F.first(p).alias(p) for p in params],
        )
        .orderBy("as_of")
        .collect()
    )
    return [
        Slice(
            as_of=r["as_of"], kind=r["kind"], source_version=r["source_version"], rows=r["rows"],
            params={p: r[p] for p in params},
        )
        for r in rows
    ]  # fmt: skip


def resolve(spark: SparkSession, wh: Warehouse, name: str, as_of: date) -> DataFrame:
    """State rows valid at `as_of` (newest per key since the last full slice, no tombstones)."""
    spec = SPECS[name]
    table = wh.read(spark, LAYER, name).where(F.col("as_of") <= F.lit(as_of))
    base = agg_row(table.where(F.col("snapshot_kind") == FULL).agg(F.max("as_of")))[0]
    if base is None:
        return table.limit(0)
    chain = table.where(F.col("as_of") >= F.lit(base))
    if chain.where(F.col("as_of") > F.lit(base)).isEmpty():
        return chain.where(~F.col("is_deleted"))
    newest = Window.partitionBy(*spec.keys).orderBy(F.col("as_of").desc())
    return (
        chain.withColumn("_rank", F.row_number().over(newest))
        .where((F.col("_rank") == 1) & ~F.col("is_deleted"))
        .drop("_rank")
    )


def read(spark: SparkSession, wh: Warehouse, name: str, as_of: date) -> DataFrame:
    """The snapshot at `as_of`, with `as_of` set to that date and the writing row's `run_id`."""
    if "snapshot_kind" not in wh.read(spark, LAYER, name).columns:
        # the earlier layout (a full copy per as_of); the next refresh converts it
        return wh.read(spark, LAYER, name).where(F.col("as_of") == F.lit(as_of))
    derived = SPECS[name].derive(resolve(spark, wh, name, as_of), as_of, ("run_id",))
    return derived.withColumn("as_of", F.lit(as_of)).select(
        *[c for c in derived.columns if c != "run_id"], "as_of", "run_id"
    )


def _with_bookkeeping(
    state: DataFrame, spec: Spec, settings: Settings, as_of: date, run_id: str, kind: str,
    source_version: int | None, deleted: bool,
) -> DataFrame:  # fmt: skip
    out = state.select(*spec.columns)
    for param, value in spec.params(settings).items():
        out = out.withColumn(param, F.lit(value))
    return (
        out.withColumn("as_of", F.lit(as_of))
        .withColumn("run_id", F.lit(run_id))
        .withColumn("snapshot_kind", F.lit(kind))
        .withColumn("source_version", F.lit(source_version).cast("long"))
        .withColumn("is_deleted", F.lit(deleted))
    )


def _changed_lines(
    spark: SparkSession, wh: Warehouse, lines: DataFrame, since: Slice, version: int, as_of: date
) -> DataFrame | None:
    """(customer_id, product_id) of every line that may change a key's state since `since`.

    None when the change data feed cannot cover the silver versions in between.
    """
    cols = ["customer_id", "product_id"]
    in_window = F.col("order_date") <= F.lit(as_of)
    entered = lines.where((F.col("order_date") > F.lit(since.as_of)) & in_window).select(*cols)
    if since.source_version is None or since.source_version > version:
        log.warning(
            "previous slice %s read silver version %s, this run reads %d: writing full snapshots",
            since.as_of, since.source_version, version,
        )  # fmt: skip
        return None
    if since.source_version == version:
        return entered
    try:
        feed = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", since.source_version + 1)
            .option("endingVersion", version)
            .load(wh.path("silver", "order_lines"))
            .where(in_window)
            .select(*cols)
        )
        changed = entered.unionByName(feed).distinct().persist(StorageLevel.MEMORY_AND_DISK)
        changed.count()  # reads the feed now, so missing feed files surface here
    except (PySparkException, Py4JJavaError) as exc:
        log.warning(
            "silver change data feed unavailable for versions %d-%d (%s): writing full snapshots",
            since.source_version + 1, version, str(exc).splitlines()[0][:200],
        )  # fmt: skip
        return None
    return changed


def plan_slice(
    history: list[Slice], spec: Spec, settings: Settings, as_of: date
) -> tuple[str, str, Slice | None]:
    """(kind, reason, previous slice) for a slice at `as_of`."""
    earlier = [s for s in history if s.as_of < as_of]
    if not earlier:
        return FULL, "first slice", None
    if any(s.as_of > as_of for s in history):
        return FULL, "backfill before later slices", None
    previous = earlier[-1]
    if previous.params != spec.params(settings):
        return FULL, "state parameters changed", None
    fulls = [s for s in earlier if s.kind == FULL]
    if not fulls:
        return FULL, "no full slice before", None
    since_full = sum(s.rows for s in earlier if s.as_of > fulls[-1].as_of)
    if since_full >= settings.features.snapshot_rebase_share * max(fulls[-1].rows, 1):
        return FULL, "rebase: change slices reached the rebase share", None
    return CHANGE, "changed keys only", previous


def _rebase_later(
    spark: SparkSession, wh: Warehouse, spec: Spec, history: list[Slice], as_of: date
) -> None:
    """Before a backfill: turns the next later slice into a full one if it is a change slice."""
    later = [s for s in history if s.as_of > as_of]
    if not later or later[0].kind == FULL:
        return
    nxt = later[0]
    log.info("backfill: rewriting %s slice %s as a full slice first", spec.name, nxt.as_of)
    state = resolve(spark, wh, spec.name, nxt.as_of).withColumn("snapshot_kind", F.lit(FULL))
    state = state.withColumn("as_of", F.lit(nxt.as_of)).persist(StorageLevel.MEMORY_AND_DISK)
    state.count()
    wh.write_slice(state, LAYER, spec.name, nxt.as_of)
    state.unpersist()


def _state_from_snapshot(frame: DataFrame, name: str, as_of: Column) -> DataFrame:
    """State rows from a snapshot frame computed for `as_of` (as `salesopt.features` returns).

    For interactions the anchor is `as_of` itself, where `strength_at_anchor` is the strength.
    """
    if name == "interactions" and "strength_at_anchor" not in frame.columns:
        frame = frame.withColumn("strength_anchor_date", as_of).withColumn(
            "strength_at_anchor", F.col("strength")
        )
    return frame


def write_full_slice(
    spark: SparkSession,
    wh: Warehouse,
    settings: Settings,
    name: str,
    frame: DataFrame,
    as_of: date,
    run_id: str,
) -> int | None:
    """Writes a snapshot computed elsewhere (tests, benchmarks, imports) as the full `as_of` slice.

    `frame` has the columns a snapshot read returns (`salesopt.features.customer_features` /
    `interactions` output); extra columns are dropped.
    """
    spec = SPECS[name]
    state = _state_from_snapshot(frame, name, F.lit(as_of))
    rows = _with_bookkeeping(state, spec, settings, as_of, run_id, FULL, None, deleted=False)
    return wh.write_slice(rows, LAYER, name, as_of)


def migrate_legacy(spark: SparkSession, wh: Warehouse, name: str, settings: Settings) -> bool:
    """Converts a table written with one full copy per `as_of` (no `snapshot_kind` column).

    Every old slice becomes a `full` slice with the same snapshot: for interactions the anchor is
    the slice's own `as_of`, where `strength_at_anchor` is the stored strength.
    """
    if not wh.exists(spark, LAYER, name):
        return False
    old = wh.read(spark, LAYER, name)
    if "snapshot_kind" in old.columns:
        return False
    spec = SPECS[name]
    log.warning("converting %s/%s to the change-chain layout (one-off)", LAYER, name)
    old = _state_from_snapshot(old, name, F.col("as_of"))  # each old slice at its own as_of
    out = old.select(*spec.columns, "as_of", "run_id")
    for param, value in spec.params(settings).items():
        out = out.withColumn(param, F.lit(value))
    out = (
        out.withColumn("snapshot_kind", F.lit(FULL))
        .withColumn("source_version", F.lit(None).cast("long"))
        .withColumn("is_deleted", F.lit(False))
    )
    wh.overwrite(out, LAYER, name, partition_by=("as_of",))
    return True


@dataclass
class _Prepared:
    spec: Spec
    kind: str
    reason: str
    rows: DataFrame


def _prepare(
    spark: SparkSession, wh: Warehouse, settings: Settings, spec: Spec, lines: DataFrame,
    source_version: int, as_of: date, run_id: str, feeds: dict[tuple[date, int], DataFrame | None],
    scopes: dict[tuple[date, int], DataFrame],
) -> _Prepared:  # fmt: skip
    """Plans one table's slice and builds its rows (persisted); nothing is written yet."""
    migrate_legacy(spark, wh, spec.name, settings)
    history = slices(spark, wh, spec)
    kind, reason, previous = plan_slice(history, spec, settings, as_of)
    log.info("%s/%s slice %s: planned %s (%s)", LAYER, spec.name, as_of, kind, reason)
    changed = None
    key = (as_of, -1)
    if previous is not None:
        key = (previous.as_of, -1 if previous.source_version is None else previous.source_version)
        if key not in feeds:  # both tables usually share the previous slice: read the feed once
            feeds[key] = _changed_lines(spark, wh, lines, previous, source_version, as_of)
        changed = feeds[key]
        if changed is None:
            no_version = previous.source_version is None or previous.source_version > source_version
            kind = FULL
            reason = (
                "no silver version to compare with"
                if no_version
                else "change data feed unavailable"
            )
    if kind == FULL:
        _rebase_later(spark, wh, spec, history, as_of)
        rows = _with_bookkeeping(
            spec.state(lines, as_of, settings), spec, settings, as_of, run_id, FULL,
            source_version, deleted=False,
        )  # fmt: skip
    else:
        assert changed is not None
        keys = changed.select(*spec.keys).distinct()
        scope = scopes.get(key)
        if scope is None:  # every line of the changed customers, read once for both tables
            customers = changed.select("customer_id").distinct()
            scope = lines.select(*features.SNAPSHOT_INPUT).join(
                customers, on="customer_id", how="left_semi"
            )
            scopes[key] = scope = scope.persist(StorageLevel.MEMORY_AND_DISK)
        state = spec.state(scope.join(keys, on=list(spec.keys), how="left_semi"), as_of, settings)
        kept = _with_bookkeeping(
            state, spec, settings, as_of, run_id, CHANGE, source_version, deleted=False
        )
        gone = keys.join(state.select(*spec.keys), on=list(spec.keys), how="left_anti")
        tombstones = kept.limit(0).unionByName(gone, allowMissingColumns=True)
        tombstones = tombstones.withColumns(
            {
                "as_of": F.lit(as_of), "run_id": F.lit(run_id), "snapshot_kind": F.lit(CHANGE),
                "source_version": F.lit(source_version).cast("long"), "is_deleted": F.lit(True),
                **{p: F.lit(v) for p, v in spec.params(settings).items()},
            }
        )  # fmt: skip
        rows = kept.unionByName(tombstones)
    return _Prepared(spec, kind, reason, rows.persist(StorageLevel.MEMORY_AND_DISK))


def write_all(
    spark: SparkSession,
    wh: Warehouse,
    settings: Settings,
    lines: DataFrame,
    source_version: int,
    as_of: date,
    run_id: str,
) -> dict[str, Written]:
    """Writes the `as_of` slice of every snapshot table.

    `lines` is silver at `source_version`. Quality rules run on the rows about to be written
    (the whole snapshot for a full slice, the changed keys for a change slice); a failing `fail`
    rule stops before either table is written.
    """
    feeds: dict[tuple[date, int], DataFrame | None] = {}
    scopes: dict[tuple[date, int], DataFrame] = {}
    prepared = [
        _prepare(spark, wh, settings, spec, lines, source_version, as_of, run_id, feeds, scopes)
        for spec in SPECS.values()
    ]
    results = []
    for p in prepared:
        checked = p.spec.derive(p.rows.where(~F.col("is_deleted")), as_of, ())
        results += quality.evaluate(checked, f"{LAYER}/{p.spec.name}", settings.quality.rules)
    log.info("snapshot quality rules evaluated")
    quality.record(spark, wh, results, run_id, as_of)
    quality.enforce(results)
    written: dict[str, Written] = {}
    for p in prepared:
        n = p.rows.count()
        version = wh.write_slice(p.rows, LAYER, p.spec.name, as_of)
        p.rows.unpersist()
        log.info("%s/%s slice %s: %s, %d rows (%s)", LAYER, p.spec.name, as_of, p.kind, n, p.reason)
        written[p.spec.name] = Written(
            kind=p.kind, reason=p.reason, rows_written=n, version=version
        )
    for cached in [*feeds.values(), *scopes.values()]:
        if cached is not None:
            cached.unpersist()
    return written
