"""Snapshot tables stored as change chains (salesopt.snapshots): what a daily run writes, and
that every date reads exactly what a full recomputation from silver gives."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt import features, snapshots
from salesopt.io.tables import Warehouse
from salesopt.pipeline import WAREHOUSE_STAGES, refresh
from tests.spark.test_refresh_edges import line, write_landing

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
CORE = WAREHOUSE_STAGES
D1, D_MID, D2, D3 = date(2025, 3, 3), date(2025, 3, 5), date(2025, 3, 8), date(2025, 3, 9)
HALF_LIFE = 90.0


def _comparable(df: DataFrame) -> DataFrame:
    kept = df.drop("run_id", "as_of")
    return kept.select(
        *[
            F.sort_array(F.map_entries(f.name)).alias(f.name)
            if f.dataType.simpleString().startswith("map")
            else F.col(f.name)
            for f in kept.schema.fields
        ]
    )


def _assert_same(a: DataFrame, b: DataFrame) -> None:
    a, b = _comparable(a), _comparable(b)
    b = b.select(*a.columns)
    assert a.count() == b.count()
    assert a.exceptAll(b).isEmpty() and b.exceptAll(a).isEmpty()


def _expected(spark: SparkSession, wh: Warehouse, as_of: date, version: int | None = None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    lines = reader.load(wh.path("silver", "order_lines"))
    return {
        "customer_features": features.customer_features(lines, as_of),
        "interactions": features.interactions(lines, as_of, HALF_LIFE),
    }


def _slices(spark: SparkSession, wh: Warehouse, name: str) -> dict[date, tuple[str, int]]:
    return {s.as_of: (s.kind, s.rows) for s in snapshots.slices(spark, wh, snapshots.SPECS[name])}


def _last_write_modes(spark: SparkSession, wh: Warehouse) -> set[str]:
    """Save mode of the latest commit of each snapshot table."""
    return {
        DeltaTable.forPath(spark, wh.path("gold", name))
        .history(1)
        .first()["operationParameters"]["mode"]
        for name in snapshots.SPECS
    }


def _landing(root: Path, files: dict[str, list[str]]) -> None:
    write_landing(root, files)
    (root / "customers" / "c.csv").write_text(
        "customer_id,name,email,phone,region,signup_date\n"
        "C1,Ana Smith,ana@x.org,+1-555-1,north,2024-01-01\n"
        "C2,Bo Lee,bo@x.org,+1-555-2,south,2024-01-01\n"
        "C3,Cy Diaz,cy@x.org,+1-555-3,east,2024-01-01\n"
    )


def _deliver(landing: Path, day: str, order: str, qty: int) -> None:
    """One file delivered on `day` with one line ordered that morning."""
    _landing(
        landing, {f"batch_date={day}/{order}.json": [line(order, 1, qty, ts=f"{day}T08:00:00Z")]}
    )


@pytest.mark.slow  # five refreshes (about 3.5 min): in `make test-slow` and .ci/run
def test_daily_runs_write_changed_keys_and_every_date_reads_like_a_full_rebuild(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    settings = settings_for(clean={"max_future_days": 5})
    wh = Warehouse.from_settings(settings)
    landing = tmp_path / "landing"
    _landing(
        landing,
        {
            "batch_date=2025-03-03/a.json": [
                line("O1", 1, 2, customer_id="C1", product_id="P1"),
                line("O2", 1, 1, customer_id="C2", product_id="P1"),
                line("O3", 1, 4, customer_id="C3", product_id="P2"),
                # dated after D1: invisible at D1, enters the window at D2 without a new file
                line("O9", 1, 1, ts="2025-03-06T10:00:00Z", customer_id="C3", product_id="P1"),
            ]
        },
    )
    first = refresh(spark, settings, D1, CORE)
    assert first.stage("gold").summary["snapshots"]["interactions"]["kind"] == "full"
    silver_d1 = wh.version(spark, "silver", "order_lines")

    later = "2025-03-07T09:00:00Z"
    _landing(
        landing,
        {
            "batch_date=2025-03-07/b.json": [
                # C1 buys again; C2's only line is re-sent for another product (a correction)
                line("O4", 1, 3, ts="2025-03-07T08:00:00Z", customer_id="C1", product_id="P2"),
                line("O2", 1, 1, updated_at=later, customer_id="C2", product_id="P2"),
                # a late line dated before D1, in a new order: C1 and (C1,P1) recomputed
                line("O6", 1, 2, ts="2025-03-02T10:00:00Z", customer_id="C1", product_id="P1"),
            ]
        },
    )
    second = refresh(spark, settings, D2, CORE)
    assert _last_write_modes(spark, wh) == {"Append"}  # a date the slice lists do not hold
    written = second.stage("gold").summary["snapshots"]
    assert written["interactions"]["kind"] == "change"
    assert written["customer_features"]["kind"] == "change"
    # (C1,P2) new, (C1,P1) a late line, (C2,P2) new, (C2,P1) gone, (C3,P1) entered the window;
    # (C3,P2) untouched
    slice_d2 = wh.read(spark, "gold", "interactions").where(F.col("as_of") == F.lit(D2))
    rows = {(r["customer_id"], r["product_id"], r["is_deleted"]) for r in slice_d2.collect()}
    assert rows == {("C1", "P1", False), ("C1", "P2", False), ("C2", "P2", False),
                    ("C2", "P1", True), ("C3", "P1", False)}  # fmt: skip
    assert written["customer_features"]["rows_written"] == 3  # every customer changed here
    # C1 (a late line) and C2 corrected; C3 only had later lines added to its D1 row
    assert written["customer_features"]["keys_recomputed"] == 2
    # the 3 corrected pairs (C1,P1), (C2,P1), (C2,P2); (C1,P2) and (C3,P1) have no D1 row:
    # their new lines alone
    assert written["interactions"]["keys_recomputed"] == 3

    for name in snapshots.SPECS:
        expected = _expected(spark, wh, D2)[name]
        _assert_same(wh.read_as_of(spark, "gold", name, D2), expected)
        at_d1 = _expected(spark, wh, D1, silver_d1)[name]
        _assert_same(wh.read_as_of(spark, "gold", name, D1), at_d1)
    strength = wh.read_as_of(spark, "gold", "interactions", D2).where("customer_id = 'C1'")
    by_product = {r["product_id"]: r["strength"] for r in strength.collect()}
    assert by_product["P2"] == pytest.approx(3 * 0.5 ** (1 / HALF_LIFE), abs=1e-6)  # O4, 1 day
    # O1 (5 days before D2) and the late O6 (6 days)
    p1 = 2 * 0.5 ** (5 / HALF_LIFE) + 2 * 0.5 ** (6 / HALF_LIFE)
    assert by_product["P1"] == pytest.approx(p1, abs=1e-6)

    # rerun of the latest date: same rows; backfill in between: later dates still read the same
    before = {}
    for n in snapshots.SPECS:  # collected: a cached frame would be recomputed after the writes
        df = wh.read_as_of(spark, "gold", n, D2)
        before[n] = spark.createDataFrame(df.collect(), df.schema)
    refresh(spark, settings, D2, CORE)
    assert _last_write_modes(spark, wh) == {"Overwrite"}  # the rerun replaced the D2 slices
    backfill = refresh(spark, settings, D_MID, CORE)
    assert backfill.stage("gold").summary["snapshots"]["interactions"]["reason"] == (
        "backfill before later slices"
    )
    assert _slices(spark, wh, "interactions")[D2][0] == "full"  # rebased before the backfill
    for spec in snapshots.SPECS.values():  # the stored slice list agrees with the rows
        assert snapshots.slices(spark, wh, spec) == snapshots.slices_from_rows(spark, wh, spec)
    for name in snapshots.SPECS:
        _assert_same(wh.read_as_of(spark, "gold", name, D2), before[name])
        _assert_same(
            wh.read_as_of(spark, "gold", name, D_MID), _expected(spark, wh, D_MID, silver_d1)[name]
        )

    # the change data feed cannot cover the gap (turned off, as on a table from before it was
    # used): a full slice, still equal to a rebuild; silver turns its feed back on
    path = wh.path("silver", "order_lines")
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES (delta.enableChangeDataFeed = false)")
    _deliver(landing, "2025-03-09", "O5", 1)
    third = refresh(spark, settings, D3, CORE)
    written = third.stage("gold").summary["snapshots"]["interactions"]
    assert (written["kind"], written["reason"]) == ("full", "change data feed unavailable")
    _assert_same(
        wh.read_as_of(spark, "gold", "interactions", D3), _expected(spark, wh, D3)["interactions"]
    )
    assert not wh.ensure_change_feed(spark, "silver", "order_lines")  # already back on


SILVER_SCHEMA = (
    "customer_id string, product_id string, order_id string, order_date date, quantity int, "
    "net_amount double, category string, is_cancelled boolean"
)


def _silver_lines(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(
        [(c, p, o, date.fromisoformat(d), q, n, cat, x) for c, p, o, d, q, n, cat, x in rows],
        SILVER_SCHEMA,
    )


def test_change_slice_adds_later_lines_and_recomputes_only_what_adding_would_get_wrong(
    spark: SparkSession, settings_for, caplog: pytest.LogCaptureFixture
) -> None:
    # no rebase: the tiny chain would pass any share of its 4-row full slice
    settings = settings_for(
        features={"recency_half_life_days": HALF_LIFE, "snapshot_rebase_share": 9}
    )
    wh = Warehouse.from_settings(settings)
    path = wh.path("silver", "order_lines")
    first = [
        ("C1", "P1", "O1", "2025-03-01", 2, 10.0, "dairy", False),
        ("C1", "P2", "O1", "2025-03-01", 1, 5.0, "bakery", False),
        ("C2", "P1", "O2", "2025-03-02", 1, 5.0, "dairy", False),
        ("C3", "P3", "O3", "2025-03-02", -1, -4.0, "fruit", False),  # a return only: stored
        ("C4", "P1", "O4", "2025-03-01", 3, 15.0, "dairy", False),
        ("C5", "P2", "O5", "2025-03-03", 1, 5.0, "bakery", False),
        ("C6", "P1", "O11", "2025-03-01", 1, 5.0, "dairy", False),
    ]
    _silver_lines(spark, first).write.format("delta").partitionBy("order_date").save(path)
    wh.ensure_change_feed(spark, "silver", "order_lines")
    v1 = wh.version(spark, "silver", "order_lines")
    assert v1 is not None
    lines = spark.read.format("delta").load(path)
    snapshots.write_all(spark, wh, settings, lines, v1, D1, "r1")

    later = [
        ("C1", "P1", "O6", "2025-03-05", 1, 5.0, "dairy", False),  # added to (C1,P1)
        ("C1", "P3", "O6", "2025-03-05", 2, 8.0, "fruit", False),  # new pair
        ("C1", "P2", "O1", "2025-03-06", -1, -5.0, "bakery", False),  # a later return
        ("C2", "P1", "O7", "2025-03-04", 1, 5.0, "dairy", True),  # cancelled: C2 unchanged
        ("C3", "P3", "O8", "2025-03-05", 1, 4.0, "fruit", False),  # added to C3's stored row
        ("C4", "P1", "O4", "2025-03-05", 1, 5.0, "dairy", False),  # O4 spans D1: recomputed
        ("C5", "P2", "O9", "2025-03-02", 2, 10.0, "bakery", False),  # late, new order
        ("C5", "P2", "O10", "2025-03-06", 1, 5.0, "bakery", False),
        ("C6", "P3", "O11", "2025-03-02", 1, 4.0, "fruit", False),  # late into a stored order
        # one new order with a late line and a later one: O12 spans D1 (counted once)
        ("C7", "P1", "O12", "2025-03-03", 1, 5.0, "dairy", False),
        ("C7", "P2", "O12", "2025-03-05", 1, 5.0, "bakery", False),
    ]
    _silver_lines(spark, later).write.format("delta").mode("append").save(path)
    # C2's only sale removed: C2 and (C2,P1) get tombstones
    spark.sql(f"DELETE FROM delta.`{path}` WHERE order_id = 'O2'")
    v2 = wh.version(spark, "silver", "order_lines")
    assert v2 is not None
    lines = spark.read.format("delta").load(path)
    with caplog.at_level(logging.WARNING, logger="salesopt.snapshots"):
        written = snapshots.write_all(spark, wh, settings, lines, v2, D2, "r2")
    # C4's O4 and C7's O12 have sold lines on both sides of D1: named in a warning
    assert "2 customer(s) have orders with sold lines on both sides of 2025-03-03" in caplog.text

    assert written["customer_features"].to_dict() == {
        "kind": "change", "reason": "changed keys only", "rows_written": 7,
        # C2 (a tombstone), C5, C6, C7 (late lines), C4 (O4 spans D1); C1 and C3 added to
        "keys_recomputed": 5,
    }  # fmt: skip
    assert written["interactions"].to_dict() == {
        "kind": "change", "reason": "changed keys only", "rows_written": 10,
        # (C2,P1) (a tombstone), (C5,P2), (C6,P3), (C7,P1) (late lines), (C4,P1), (C7,P2)
        # (spanning orders); (C1,P1), (C1,P2), (C3,P3) added to, (C1,P3) from its new lines alone
        "keys_recomputed": 6,
    }  # fmt: skip
    deleted = wh.read(spark, "gold", "interactions").where(F.col("is_deleted"))
    assert [(r["customer_id"], r["product_id"]) for r in deleted.collect()] == [("C2", "P1")]
    # the slice list stored in the write's commit is what the rows say; after a commit that
    # does not store it (OPTIMIZE) the list is read from the rows
    for spec in snapshots.SPECS.values():
        assert snapshots.SLICES_METADATA in (wh.last_user_metadata(spark, "gold", spec.name) or "")
        from_rows = snapshots.slices_from_rows(spark, wh, spec)
        assert [s.as_of for s in from_rows] == [D1, D2]
        assert snapshots.slices(spark, wh, spec) == from_rows
    spark.sql(f"OPTIMIZE delta.`{wh.path('gold', 'interactions')}`")
    assert wh.last_user_metadata(spark, "gold", "interactions") is None
    assert snapshots.slices(spark, wh, snapshots.SPECS["interactions"]) == (
        snapshots.slices_from_rows(spark, wh, snapshots.SPECS["interactions"])
    )
    for name, expected in _expected(spark, wh, D2).items():
        _assert_same(wh.read_as_of(spark, "gold", name, D2), expected)
    read = wh.read_as_of(spark, "gold", "customer_features", D2)
    got = {r["customer_id"]: r for r in read.where("customer_id >= 'C3'").collect()}
    assert (got["C4"]["frequency"], got["C4"]["monetary"]) == (1, 20.0)  # O4 counted once
    assert got["C3"]["monetary"] == 0.0  # the earlier return is kept
    freq = {c: got[c]["frequency"] for c in ("C5", "C6", "C7")}
    assert freq == {"C5": 3, "C6": 1, "C7": 1}  # the late lines' orders counted once each
    assert set(got) == {"C3", "C4", "C5", "C6", "C7"}  # no other key from C3 on

    # a table stored before the additive columns existed: a full slice for it, while the other
    # table still writes a change slice
    cf_path = wh.path("gold", "customer_features")
    old = (
        spark.read.format("delta")
        .load(cf_path)
        .drop("sold_lines", "sold_units", "returned_units", "category_revenue")
    )
    old = spark.createDataFrame(old.collect(), old.schema)  # detached from the table it replaces
    old.write.format("delta").mode("overwrite").option("overwriteSchema", "true").partitionBy(
        "as_of"
    ).save(cf_path)
    written = snapshots.write_all(spark, wh, settings, lines, v2, D3, "r3")
    assert written["customer_features"].to_dict() == {
        "kind": "full", "reason": "state columns added", "rows_written": 6,  # not C2
    }  # fmt: skip
    assert written["interactions"].kind == "change"
    for name, expected in _expected(spark, wh, D3).items():
        _assert_same(wh.read_as_of(spark, "gold", name, D3), expected)


def _slice(
    day: int, kind: str = "change", rows: int = 10, half_life: float = HALF_LIFE,
    layout: float = snapshots.STATE_LAYOUT,
) -> snapshots.Slice:  # fmt: skip
    return snapshots.Slice(
        as_of=date(2025, 3, day), kind=kind, source_version=day, rows=rows,
        params={"half_life_days": half_life, "state_layout": layout},
    )  # fmt: skip


def test_plan_chooses_full_slices_when_a_change_slice_would_be_wrong_or_costly(
    base_settings,
) -> None:
    spec = snapshots.SPECS["interactions"]

    def plan(history: list[snapshots.Slice], day: int, **feat: float) -> tuple[str, str]:
        settings = base_settings.with_overrides(features=feat)
        return snapshots.plan_slice(history, spec, settings, date(2025, 3, day))[:2]

    base = _slice(1, "full", rows=100)
    assert plan([], 1) == ("full", "first slice")
    assert plan([base], 2) == ("change", "changed keys only")
    assert plan([base, _slice(2)], 2) == ("change", "changed keys only")  # rerun of a change day
    assert plan([base, _slice(5)], 3) == ("full", "backfill before later slices")
    assert plan([base], 2, recency_half_life_days=30.0) == ("full", "state parameters changed")
    assert plan([base, _slice(2, rows=30), _slice(3, rows=20)], 4)[0] == "full"  # 50 >= 0.5 x 100
    assert plan([base, _slice(2, rows=30), _slice(3, rows=19)], 4)[0] == "change"
    assert plan([base, _slice(2, rows=30)], 4, snapshot_rebase_share=0.2)[0] == "full"
    assert plan([_slice(2)], 3) == ("full", "no full slice before")
    # a chain whose full slice was written from a computed snapshot (no rows for keys without
    # a sale) is not continued
    imported = _slice(1, "full", rows=100, layout=snapshots.SNAPSHOT_LAYOUT)
    assert plan([imported, _slice(2)], 3) == ("full", "state parameters changed")


def test_tables_in_the_earlier_layout_are_converted_with_the_same_snapshots(
    spark: SparkSession, settings_for
) -> None:
    settings = settings_for()
    wh = Warehouse.from_settings(settings)
    day = date(2025, 3, 3)
    old = spark.createDataFrame(
        [("C1", "P1", "dairy", 2, 3, 0, day, day, 2.5, day, "r1")],
        "customer_id string, product_id string, category string, n_purchases bigint, "
        "quantity bigint, returned_units bigint, first_purchase_date date, "
        "last_purchase_date date, strength double, as_of date, run_id string",
    )
    wh.overwrite(old, "gold", "interactions", partition_by=("as_of",))
    assert snapshots.migrate_legacy(spark, wh, "interactions", settings)
    assert not snapshots.migrate_legacy(spark, wh, "interactions", settings)  # once only
    assert [
        (s.as_of, s.kind) for s in snapshots.slices(spark, wh, snapshots.SPECS["interactions"])
    ] == [(day, "full")]
    _assert_same(wh.read_as_of(spark, "gold", "interactions", day), old)
    ten_days = wh.read_as_of(spark, "gold", "interactions", date(2025, 3, 13)).first()
    assert ten_days["strength"] == pytest.approx(2.5 * 0.5 ** (10 / HALF_LIFE), abs=1e-6)
