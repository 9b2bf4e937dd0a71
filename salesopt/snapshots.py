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
dated after the previous slice's `as_of`. A changed key whose only news is lines dated after the
previous `as_of` gets its prior row plus those lines (`features.add_*_lines`), or those lines
alone when it has no prior row: a chain keeps a state row for every key with a counted line
(rows without a sale are stored but not read, `Spec.visible`), so a key without a row has no
earlier line that counts. The others (corrected lines, an order on both sides of the previous
`as_of`) are recomputed from all their lines, read in one scan of silver (`_change_inputs`).

A `full` slice is written instead when there is no earlier slice, when the feed cannot cover
that range (feed not enabled then, or its files vacuumed), when a parameter of the state changed
(`half_life_days`) or the stored table lacks a state column, when the change slices
since the last full one reach `features.snapshot_rebase_share` of its rows (which bounds what a
reader resolves), when a slice of the chain was written with other state parameters
(`state_layout`: slices written by `write_full_slice` or converted from the earlier layout), and
for backfills (an `as_of` before an existing slice). A backfill first
turns the next later slice into a `full` one when it was a change slice, so that every later
snapshot reads exactly as before.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
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
from salesopt.io.tables import Warehouse, agg_row, materialized

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
    # prior state rows + later lines -> new state rows (`features.add_*_lines`)
    add: Callable[[DataFrame, DataFrame, Settings], DataFrame]
    # a stored row is part of the snapshot when this count is positive (`features.*_VISIBLE`)
    visible: str
    param_names: tuple[str, ...] = ()

    def is_visible(self) -> Column:
        return F.col(self.visible) > 0


def _interaction_state(lines: DataFrame, as_of: date, settings: Settings) -> DataFrame:
    return features.interaction_state(lines, as_of, settings.features.recency_half_life_days)


def _derive_interactions(state: DataFrame, as_of: date, keep: tuple[str, ...]) -> DataFrame:
    return features.derive_interactions(state, as_of, F.col("half_life_days"), keep)


def _add_interactions(prior: DataFrame, later: DataFrame, settings: Settings) -> DataFrame:
    return features.add_interaction_lines(prior, later, settings.features.recency_half_life_days)


# Stored with every row (a state parameter): 2 = state rows of keys without a sale are kept, so
# a key without a prior row has no earlier counted line. Slices written from computed snapshots
# (`write_full_slice`) or converted from the earlier layout are 1; a chain mixing the two is not
# continued (`plan_slice`).
STATE_LAYOUT = 2.0
SNAPSHOT_LAYOUT = 1.0


SPECS: dict[str, Spec] = {
    "customer_features": Spec(
        name="customer_features",
        keys=("customer_id",),
        columns=features.CUSTOMER_STATE,
        state=lambda lines, as_of, _s: features.customer_state(lines, as_of),
        derive=features.derive_customer_features,
        params=lambda _s: {"state_layout": STATE_LAYOUT},
        add=lambda prior, later, _s: features.add_customer_lines(prior, later),
        visible=features.CUSTOMER_VISIBLE,
        param_names=("state_layout",),
    ),
    "interactions": Spec(
        name="interactions",
        keys=("customer_id", "product_id"),
        columns=features.INTERACTION_STATE,
        state=_interaction_state,
        derive=_derive_interactions,
        params=lambda s: {
            "half_life_days": float(s.features.recency_half_life_days),
            "state_layout": STATE_LAYOUT,
        },
        add=_add_interactions,
        visible=features.INTERACTION_VISIBLE,
        param_names=("half_life_days", "state_layout"),
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
    keys_recomputed: int | None = None  # change slices: keys recomputed from all their lines

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": self.kind, "reason": self.reason, "rows_written": self.rows_written
        }  # fmt: skip
        if self.keys_recomputed is not None:
            out["keys_recomputed"] = self.keys_recomputed
        return out


def is_chained(layer: str, name: str) -> bool:
    return layer == LAYER and name in SPECS


# the slice list stored in the `userMetadata` of every slice write (`slices`)
SLICES_METADATA = "salesopt_slices"


def slices_metadata(history: list[Slice]) -> str:
    """The slice list as stored in a slice write's commit: one compact JSON document."""
    listed = [
        [s.as_of.isoformat(), s.kind, s.source_version, s.rows, s.params]
        for s in sorted(history, key=lambda s: s.as_of)
    ]
    return json.dumps({SLICES_METADATA: listed}, separators=(",", ":"))


def _listed_slices(text: str | None, spec: Spec) -> list[Slice] | None:
    """The slices stored by `slices_metadata`; None when `text` is not such a list."""
    try:
        listed = json.loads(text or "")[SLICES_METADATA]
        return [
            Slice(
                as_of=date.fromisoformat(day), kind=kind, source_version=version, rows=int(rows),
                params={p: params.get(p) for p in spec.param_names},
            )
            for day, kind, version, rows, params in listed
        ]  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def slices(spark: SparkSession, wh: Warehouse, spec: Spec) -> list[Slice]:
    """The table's slices, oldest first.

    Read from the latest commit when `write_all` made it: every slice write stores the whole
    list in its commit (`userMetadata`), so the list and the data change in one atomic commit
    and cannot disagree after a crash. Any other latest commit (OPTIMIZE, VACUUM, a retention
    DELETE, a backfill's rebase, a table from an earlier release) makes this read the
    bookkeeping columns of the whole table instead (`slices_from_rows`).
    """
    if not wh.exists(spark, LAYER, spec.name):
        return []
    listed = _listed_slices(wh.last_user_metadata(spark, LAYER, spec.name), spec)
    return listed if listed is not None else slices_from_rows(spark, wh, spec)


def slices_from_rows(spark: SparkSession, wh: Warehouse, spec: Spec) -> list[Slice]:
    """The table's slices from its rows (one small aggregate over the bookkeeping columns)."""
    params = spec.param_names
    table = wh.read(spark, LAYER, spec.name)
    rows = (
        table.groupBy("as_of")
        .agg(
            F.first("snapshot_kind").alias("kind"),
            F.first("source_version").alias("source_version"),
            F.count(F.lit(1)).alias("rows"),
            # a parameter column the table does not have yet reads as null (a changed parameter)
            *[(F.first(p) if p in table.columns else F.lit(None)).alias(p) for p in params],
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


def resolve(
    spark: SparkSession,
    wh: Warehouse,
    name: str,
    as_of: date,
    keys: DataFrame | None = None,
    history: list[Slice] | None = None,
) -> DataFrame:
    """State rows valid at `as_of` (newest per key since the last full slice, no tombstones).

    `keys` limits the result to those keys (filtered before the newest-row step); `history`
    (`slices`, when the caller has it) saves the queries that find the chain.
    """
    spec = SPECS[name]
    table = wh.read(spark, LAYER, name).where(F.col("as_of") <= F.lit(as_of))
    if history is None:
        base = agg_row(table.where(F.col("snapshot_kind") == FULL).agg(F.max("as_of")))[0]
    else:
        base = max((s.as_of for s in history if s.kind == FULL and s.as_of <= as_of), default=None)
    if base is None:
        return table.limit(0)
    chain = table.where(F.col("as_of") >= F.lit(base))
    if keys is not None:
        chain = chain.join(F.broadcast(keys), on=list(spec.keys), how="left_semi")
    if history is None:
        single = chain.where(F.col("as_of") > F.lit(base)).isEmpty()
    else:
        single = not any(base < s.as_of <= as_of for s in history)
    if single:
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
    spec = SPECS[name]
    state = resolve(spark, wh, name, as_of).where(spec.is_visible())
    derived = spec.derive(state, as_of, ("run_id",))
    return derived.withColumn("as_of", F.lit(as_of)).select(
        *[c for c in derived.columns if c != "run_id"], "as_of", "run_id"
    )


def _with_bookkeeping(
    state: DataFrame, spec: Spec, settings: Settings, as_of: date, run_id: str, kind: str,
    source_version: int | None, deleted: bool, layout: float = STATE_LAYOUT,
) -> DataFrame:  # fmt: skip
    out = state.select(*spec.columns)
    for param, value in {**spec.params(settings), "state_layout": layout}.items():
        out = out.withColumn(param, F.lit(value))
    return (
        out.withColumn("as_of", F.lit(as_of))
        .withColumn("run_id", F.lit(run_id))
        .withColumn("snapshot_kind", F.lit(kind))
        .withColumn("source_version", F.lit(source_version).cast("long"))
        .withColumn("is_deleted", F.lit(deleted))
    )


@dataclass
class _Changes:
    """What changed in silver since the previous slice; read once, shared by both tables.

    - `entered`: every line dated after the previous slice's `as_of`, up to this one. Those
      lines are new to the state whatever silver version brought them.
    - `corrected`: (customer_id, product_id) of the change data feed rows dated on or before
      the previous `as_of`: inserts of late lines, re-sent versions, deletes.
    """

    previous: Slice
    entered: DataFrame
    corrected: DataFrame


def _read_changes(
    spark: SparkSession, wh: Warehouse, lines: DataFrame, since: Slice, version: int, as_of: date
) -> _Changes | None:
    """The changes since `since`; None when the change data feed cannot cover the versions."""
    if since.source_version is None or since.source_version > version:
        log.warning(
            "previous slice %s read silver version %s, this run reads %d: writing full snapshots",
            since.as_of, since.source_version, version,
        )  # fmt: skip
        return None
    window = (F.col("order_date") > F.lit(since.as_of)) & (F.col("order_date") <= F.lit(as_of))
    entered = materialized(lines.where(window).select(*features.SNAPSHOT_INPUT))
    pair = ["customer_id", "product_id"]
    if since.source_version == version:
        return _Changes(since, entered, entered.select(*pair).limit(0))
    try:
        feed = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", since.source_version + 1)
            .option("endingVersion", version)
            .load(wh.path("silver", "order_lines"))
            .where(F.col("order_date") <= F.lit(since.as_of))
            .select(*pair)
            .distinct()
        )
        corrected = materialized(feed)  # reads the feed now: missing files surface here
    except (PySparkException, Py4JJavaError) as exc:
        log.warning(
            "silver change data feed unavailable for versions %d-%d (%s): writing full snapshots",
            since.source_version + 1, version, str(exc).splitlines()[0][:200],
        )  # fmt: skip
        return None
    return _Changes(since, entered, corrected)


@dataclass
class _ChangeRows:
    """Per table: the keys recomputed from all their lines, and the prior rows to add to."""

    recompute: dict[str, DataFrame]
    prior: dict[str, DataFrame]
    # every line (up to as_of) of the recomputed keys' customers, and of every customer with a
    # corrected line (a superset when a table writes a full slice)
    scope: DataFrame


def _scan_lines(
    lines: DataFrame, changes: _Changes, as_of: date, customers: DataFrame, later: DataFrame
) -> DataFrame:
    """One scan of silver up to `as_of` for the change slice (materialized).

    Keeps every line of `customers` (`_mine`: their keys may be recomputed) and the sold lines
    dated on or before the previous `as_of` of the orders in `later` (`_spans`: those orders
    have sold lines on both sides). Both lookups are broadcast joins on the same pass.
    """
    spans = (
        F.col("_later").isNotNull()
        & (F.col("order_date") <= F.lit(changes.previous.as_of))
        & features.sold_line()
    )
    tagged = (
        features.lines_up_to(lines, as_of)
        .select(*features.SNAPSHOT_INPUT)
        .join(F.broadcast(customers.withColumn("_mine", F.lit(True))), "customer_id", "left")
        .join(F.broadcast(later.withColumn("_later", F.lit(True))), "order_id", "left")
        .withColumn("_spans", spans)
        .withColumn("_mine", F.col("_mine").isNotNull())
    )
    return materialized(tagged.where(F.col("_mine") | F.col("_spans")).drop("_later"))


def _spanning_customers(found: DataFrame, changes: _Changes) -> DataFrame:
    """Customers with an order that has sold lines on both sides of the previous `as_of`.

    Adding the later lines would count such an order twice, so these customers are recomputed.
    `found` is `_scan_lines` output: its `_spans` rows are the earlier sold lines of such orders.
    """
    earlier = found.where(F.col("_spans"))
    if earlier.isEmpty():
        return changes.entered.select("customer_id").limit(0)
    orders = earlier.select("order_id").distinct()
    customers = earlier.select("customer_id").unionByName(
        changes.entered.join(F.broadcast(orders), "order_id", "left_semi").select("customer_id")
    )
    spanning = materialized(customers.distinct())
    log.warning(
        "%d customer(s) have orders with sold lines on both sides of %s: recomputed in full",
        spanning.count(), changes.previous.as_of,
    )  # fmt: skip
    return spanning


def _change_inputs(
    spark: SparkSession, wh: Warehouse, lines: DataFrame, changes: _Changes, as_of: date,
    histories: dict[str, list[Slice]], names: set[str],
) -> _ChangeRows:  # fmt: skip
    """Splits the changed keys into keys added to and keys recomputed from all their lines, and
    reads what the latter need from silver, in one scan as a rule.

    Added to: every key with lines after the previous `as_of`, from its prior row, or from the
    empty state when it has none (the chain stores a row for every key with a counted line, so
    a key without one has no earlier line that counts). Recomputed: keys with a corrected line,
    and the changed keys of a customer with an order that has sold lines on both sides of the
    previous `as_of` (adding would count that order twice).

    One scan of silver (`_scan_lines`) reads every line of the customers with a corrected line
    and finds the spanning orders; only customers recomputed for a spanning order alone take a
    second scan (their other lines). No scan runs when nothing was corrected and no later line
    was sold.
    """
    later = materialized(changes.entered.where(features.sold_line()).select("order_id").distinct())
    corrected = materialized(changes.corrected.select("customer_id").distinct())
    if later.isEmpty() and corrected.isEmpty():
        found = (
            lines.select(*features.SNAPSHOT_INPUT)
            .withColumns({"_mine": F.lit(True), "_spans": F.lit(True)})
            .limit(0)
        )
    else:
        found = _scan_lines(lines, changes, as_of, corrected, later)
    spanning = _spanning_customers(found, changes)
    prior: dict[str, DataFrame] = {}
    recompute: dict[str, DataFrame] = {}
    for name, spec in SPECS.items():
        keys = list(spec.keys)
        if name not in names:  # this table writes a full slice: nothing to recompute here
            recompute[name] = changes.corrected.select(*keys).limit(0)
            continue
        entered_keys = changes.entered.select(*keys).distinct()
        rows = resolve(
            spark, wh, name, changes.previous.as_of, keys=entered_keys, history=histories[name]
        )
        prior[name] = materialized(rows)
        spanned = changes.entered.join(spanning, "customer_id", "left_semi").select(*keys)
        recompute[name] = materialized(
            changes.corrected.select(*keys).unionByName(spanned).distinct()
        )
    # every line of the corrected customers is in `found`; spanning customers without a
    # corrected line need theirs read
    scope = found.where(F.col("_mine")).select(*features.SNAPSHOT_INPUT)
    missing = spanning.join(corrected, "customer_id", "left_anti")
    if not missing.isEmpty():
        others = features.lines_up_to(lines, as_of).select(*features.SNAPSHOT_INPUT)
        scope = materialized(
            scope.unionByName(others.join(F.broadcast(missing), "customer_id", "left_semi"))
        )
    return _ChangeRows(recompute=recompute, prior=prior, scope=scope)


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
    if any(s.params != spec.params(settings) for s in earlier if s.as_of >= fulls[-1].as_of):
        return FULL, "state parameters changed", None
    since_full = sum(s.rows for s in earlier if s.as_of > fulls[-1].as_of)
    if since_full >= settings.features.snapshot_rebase_share * max(fulls[-1].rows, 1):
        return FULL, "rebase: change slices reached the rebase share", None
    return CHANGE, "changed keys only", previous


def _rebase_later(
    spark: SparkSession, wh: Warehouse, spec: Spec, history: list[Slice], as_of: date
) -> bool:
    """Before a backfill: turns the next later slice into a full one if it is a change slice.

    True when it rewrote a slice.
    """
    later = [s for s in history if s.as_of > as_of]
    if not later or later[0].kind == FULL:
        return False
    nxt = later[0]
    log.info("backfill: rewriting %s slice %s as a full slice first", spec.name, nxt.as_of)
    state = resolve(spark, wh, spec.name, nxt.as_of).withColumns(
        {
            "snapshot_kind": F.lit(FULL),
            "as_of": F.lit(nxt.as_of),
            # every row is valid at the version that slice read (rows carried from earlier
            # slices kept theirs, and the next change slice reads the feed from this one)
            "source_version": F.lit(nxt.source_version).cast("long"),
        }
    )
    # computed before the write replaces the slice it reads from
    wh.write_slice(materialized(state), LAYER, spec.name, nxt.as_of)
    return True


def _state_from_snapshot(frame: DataFrame, name: str, as_of: Column) -> DataFrame:
    """State rows from a snapshot frame computed for `as_of` (as `salesopt.features` returns).

    For interactions the anchor is `as_of` itself, where `strength_at_anchor` is the strength.
    """
    if name == "interactions" and "strength_at_anchor" not in frame.columns:
        frame = frame.withColumn("strength_anchor_date", as_of).withColumn(
            "strength_at_anchor", F.col("strength")
        )
    if name == "customer_features":  # the additive components are unknown: null (recomputed)
        missing = {
            "sold_lines": "long", "sold_units": "long", "returned_units": "long",
            "category_revenue": "map<string,double>",
        }  # fmt: skip
        for column, type_ in missing.items():
            if column not in frame.columns:
                frame = frame.withColumn(column, F.lit(None).cast(type_))
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
    rows = _with_bookkeeping(
        state, spec, settings, as_of, run_id, FULL, None, deleted=False, layout=SNAPSHOT_LAYOUT
    )
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
    for param, value in {**spec.params(settings), "state_layout": SNAPSHOT_LAYOUT}.items():
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
    keys_recomputed: int | None = None


def _change_slice(
    spec: Spec, settings: Settings, changes: _Changes, inputs: _ChangeRows, as_of: date,
    source_version: int, run_id: str,
) -> tuple[DataFrame, int]:  # fmt: skip
    """The change slice rows of one table: recomputed keys, added-to keys, tombstones."""
    keys = list(spec.keys)
    again = F.broadcast(inputs.recompute[spec.name])
    recomputed = materialized(
        spec.state(inputs.scope.join(again, on=keys, how="left_semi"), as_of, settings)
    )
    later = changes.entered.join(again, on=keys, how="left_anti")
    added = materialized(spec.add(inputs.prior[spec.name], later, settings))
    state = recomputed.select(*spec.columns).unionByName(added.select(*spec.columns))
    kept = _with_bookkeeping(
        state, spec, settings, as_of, run_id, CHANGE, source_version, deleted=False
    )
    gone = inputs.recompute[spec.name].join(recomputed.select(*keys), on=keys, how="left_anti")
    gone = state.limit(0).unionByName(gone, allowMissingColumns=True)  # state columns null
    tombstones = _with_bookkeeping(
        gone, spec, settings, as_of, run_id, CHANGE, source_version, deleted=True
    )
    return kept.unionByName(tombstones), inputs.recompute[spec.name].count()


def write_all(
    spark: SparkSession,
    wh: Warehouse,
    settings: Settings,
    lines: DataFrame,
    source_version: int,
    as_of: date,
    run_id: str,
    recorded_with: Sequence[quality.RuleResult] = (),
) -> dict[str, Written]:
    """Writes the `as_of` slice of every snapshot table.

    `lines` is silver at `source_version`. Quality rules run on the rows about to be written
    (the whole snapshot for a full slice, the changed keys for a change slice); a failing `fail`
    rule stops before either table is written. `recorded_with` are results evaluated earlier in
    the stage (the sales history's), appended to `ops/quality_results` in the same commit.
    """
    histories: dict[str, list[Slice]] = {}
    plans: dict[str, tuple[str, str, Slice | None]] = {}
    for name, spec in SPECS.items():
        migrate_legacy(spark, wh, name, settings)
        histories[name] = slices(spark, wh, spec)
        plans[name] = plan_slice(histories[name], spec, settings, as_of)
        stored = wh.read(spark, LAYER, name).columns if histories[name] else spec.columns
        if plans[name][0] == CHANGE and not set(spec.columns) <= set(stored):
            plans[name] = (FULL, "state columns added", None)
        log.info("%s/%s slice %s: planned %s (%s)", LAYER, name, as_of, *plans[name][:2])
    previous = {(p.as_of, p.source_version): p for _, _, p in plans.values() if p is not None}
    changes = None
    if len(previous) == 1:  # both tables chain from the same previous slice: the usual case
        since = next(iter(previous.values()))
        changes = _read_changes(spark, wh, lines, since, source_version, as_of)
    elif previous:
        log.info("the tables' previous slices differ: writing full snapshots")
    for name, (_kind, _reason, prev) in plans.items():
        same = (
            changes is not None
            and prev is not None
            and (
                (changes.previous.as_of, changes.previous.source_version)
                == (prev.as_of, prev.source_version)
            )
        )
        if prev is not None and not same:
            no_version = prev.source_version is None or prev.source_version > source_version
            plans[name] = (FULL, (
                "the tables' previous slices differ" if len(previous) > 1
                else "no silver version to compare with" if no_version
                else "change data feed unavailable"
            ), None)  # fmt: skip
    changing = {name for name, plan in plans.items() if plan[0] == CHANGE}
    inputs = None
    if changing:
        assert changes is not None
        inputs = _change_inputs(spark, wh, lines, changes, as_of, histories, changing)
    prepared = []
    rebased = dict.fromkeys(SPECS, False)
    for name, spec in SPECS.items():
        kind, reason, _prev = plans[name]
        recomputed = None
        if kind == FULL:
            rebased[name] = _rebase_later(spark, wh, spec, histories[name], as_of)
            rows = _with_bookkeeping(
                spec.state(lines, as_of, settings), spec, settings, as_of, run_id, FULL,
                source_version, deleted=False,
            ).persist(StorageLevel.MEMORY_AND_DISK)  # fmt: skip
        else:
            assert changes is not None and inputs is not None
            rows, recomputed = _change_slice(
                spec, settings, changes, inputs, as_of, source_version, run_id
            )
            rows = materialized(rows)
        prepared.append(_Prepared(spec, kind, reason, rows, recomputed))
    results = []
    for p in prepared:
        visible = p.rows.where(~F.col("is_deleted") & p.spec.is_visible())
        checked = p.spec.derive(visible, as_of, ())
        results += quality.evaluate(checked, f"{LAYER}/{p.spec.name}", settings.quality.rules)
    log.info("snapshot quality rules evaluated")
    quality.record(spark, wh, [*recorded_with, *results], run_id, as_of)
    quality.enforce(results)
    written: dict[str, Written] = {}
    for p in prepared:
        n = p.rows.count()
        listed = None
        if not rebased[p.spec.name]:  # a rebase commit since: the next read lists from rows
            this = Slice(as_of, p.kind, source_version, n, p.spec.params(settings))
            listed = [s for s in histories[p.spec.name] if s.as_of != as_of] + [this]
        # a date the slice list does not hold has no rows (list and rows change in one commit)
        new = all(s.as_of != as_of for s in histories[p.spec.name])
        version = wh.write_slice(
            p.rows, LAYER, p.spec.name, as_of,
            user_metadata=None if listed is None else slices_metadata(listed), new=new,
        )  # fmt: skip
        p.rows.unpersist()
        log.info("%s/%s slice %s: %s, %d rows (%s)", LAYER, p.spec.name, as_of, p.kind, n, p.reason)
        written[p.spec.name] = Written(
            kind=p.kind, reason=p.reason, rows_written=n, version=version,
            keys_recomputed=p.keys_recomputed,
        )  # fmt: skip
    return written
