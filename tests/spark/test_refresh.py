"""The refresh over generated data: reconciliation, each dirt kind's destination, gold, PII."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt import ops
from salesopt.io.tables import Warehouse
from salesopt.pipeline import refresh
from tests.conftest import SMALL_AS_OF
from tests.e2e.e2e_helpers import comparable

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
KEY_PATTERN = r'"order_id":"([^"]+)","line_no":(\d+)'


def _wh(settings) -> Warehouse:
    return Warehouse.from_settings(settings)


def _quarantine_keys(spark: SparkSession, settings) -> DataFrame:
    q = _wh(settings).read(spark, "quarantine", "orders_rejected")
    return q.select(
        F.regexp_extract("raw", KEY_PATTERN, 1).alias("order_id"),
        F.regexp_extract("raw", KEY_PATTERN, 2).cast("int").alias("line_no"),
        "reason",
    )


def test_reconciliation_balances_against_the_tables(spark: SparkSession, small_refresh) -> None:
    settings, _, summary = small_refresh
    rec = summary.stage("silver").summary["reconciliation"]
    wh = _wh(settings)
    assert rec["balanced"]
    assert rec["raw_lines_read"] == wh.read(spark, "bronze", "orders_raw").count()
    assert rec["accepted"] == wh.read(spark, "silver", "order_lines").count()
    quarantine = wh.read(spark, "quarantine", "orders_rejected")
    assert rec["quarantined"] == quarantine.count()
    assert rec["superseded_duplicates"] > 0
    # the reasons the summary counts (from the batch's classification) are the table's
    stored = {r["reason"]: r["count"] for r in quarantine.groupBy("reason").count().collect()}
    assert summary.stage("silver").summary["quarantine_reasons"] == stored
    assert len(stored) >= 4


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("malformed", "malformed_record"),
        ("null_required", "missing_required"),
        ("bad_price", "invalid_price"),
        ("unknown_product", "unknown_product"),
        ("future_ts", "future_timestamp"),
    ],
)
def test_bad_lines_are_quarantined_with_their_reason(
    spark: SparkSession, small_refresh, kind: str, reason: str
) -> None:
    settings, out, _ = small_refresh
    planted = spark.read.parquet(str(out / "truth" / "dirt")).where(F.col("dirt_kind") == kind)
    found = planted.join(_quarantine_keys(spark, settings), ["order_id", "line_no"], "left")
    reasons = {r["reason"]: r["count"] for r in found.groupBy("reason").count().collect()}
    assert planted.count() > 0
    assert reasons == {reason: planted.count()}


def test_duplicates_and_resends_keep_one_latest_version(spark: SparkSession, small_refresh) -> None:
    settings, out, _ = small_refresh
    silver = _wh(settings).read(spark, "silver", "order_lines")
    assert silver.groupBy("order_id", "line_no").count().where("count > 1").isEmpty()
    dirt = spark.read.parquet(str(out / "truth" / "dirt"))
    resent = dirt.where("dirt_kind = 'resend'").join(silver, ["order_id", "line_no"], "inner")
    assert resent.count() > 0
    assert resent.where(F.col("updated_at") <= F.col("order_ts")).isEmpty()
    dups = dirt.where("dirt_kind = 'duplicate'").join(silver, ["order_id", "line_no"], "inner")
    assert dups.count() == dirt.where("dirt_kind = 'duplicate'").count()


def test_late_lines_and_returns_land_in_their_own_dates(spark: SparkSession, small_refresh) -> None:
    settings, out, _ = small_refresh
    silver = _wh(settings).read(spark, "silver", "order_lines")
    dirt = spark.read.parquet(str(out / "truth" / "dirt"))
    planted_late = dirt.where("dirt_kind = 'late'")
    bronze = (
        _wh(settings)
        .read(spark, "bronze", "orders_raw")
        .select(
            F.regexp_extract("value", KEY_PATTERN, 1).alias("order_id"),
            F.regexp_extract("value", KEY_PATTERN, 2).cast("int").alias("line_no"),
            "_delivery_date",
        )
    )
    delivered = planted_late.join(bronze, ["order_id", "line_no"], "inner")
    late = planted_late.join(silver, ["order_id", "line_no"], "inner")
    assert late.count() == delivered.count() > 0
    assert late.where(~F.col("_source_file").contains("_late")).isEmpty()
    not_yet = planted_late.join(bronze, ["order_id", "line_no"], "left_anti")
    late_files = [
        p.name for p in (out / "landing" / "orders").iterdir() if p.name.endswith("_late")
    ]
    after_as_of = [n for n in late_files if n.split("=")[1][:10] > SMALL_AS_OF.isoformat()]
    assert not_yet.isEmpty() or after_as_of
    returns = silver.where("is_return")
    assert returns.count() > 0
    assert returns.where((F.col("quantity") >= 0) | (F.col("status") != "returned")).isEmpty()
    assert returns.where(F.col("net_amount") > 0).isEmpty()


def test_gold_sales_match_silver(spark: SparkSession, small_refresh) -> None:
    settings, _, _ = small_refresh
    wh = _wh(settings)
    silver = wh.read(spark, "silver", "order_lines").where("NOT is_cancelled")
    daily = wh.read(spark, "gold", "sales_daily")
    weekly = wh.read(spark, "gold", "sales_weekly")
    expected_units = silver.agg(F.sum("quantity")).first()[0]
    assert daily.agg(F.sum("units")).first()[0] == expected_units
    assert weekly.agg(F.sum("units")).first()[0] == expected_units
    assert daily.groupBy("product_id", "date").count().where("count > 1").isEmpty()
    assert weekly.where(F.dayofweek("week_start") != 2).isEmpty()


def test_snapshots_use_only_data_up_to_as_of(spark: SparkSession, small_refresh) -> None:
    settings, _, _ = small_refresh
    wh = _wh(settings)
    features = wh.read_as_of(spark, "gold", "customer_features", SMALL_AS_OF)
    assert features.count() > 0
    assert features.where(F.col("last_order_date") > F.lit(SMALL_AS_OF)).isEmpty()
    interactions = wh.read_as_of(spark, "gold", "interactions", SMALL_AS_OF)
    assert interactions.where(F.col("last_purchase_date") > F.lit(SMALL_AS_OF)).isEmpty()
    assert interactions.where(F.col("strength") < 0).isEmpty()


def test_no_pii_in_silver_or_gold(spark: SparkSession, small_refresh) -> None:
    settings, out, _ = small_refresh
    customers = spark.read.option("header", "true").csv(str(out / "landing" / "customers"))
    secrets = {v for r in customers.select("name", "email", "phone").collect() for v in r if v}
    assert len(secrets) > 100
    wh = _wh(settings)
    tables = [("silver", "customers"), ("silver", "order_lines"), ("gold", "customer_features"),
              ("gold", "interactions"), ("gold", "sales_daily")]  # fmt: skip
    for layer, name in tables:
        df = wh.read(spark, layer, name)
        strings = [f.name for f in df.schema.fields if f.dataType.simpleString() == "string"]
        assert strings
        # the small tables fit the driver: a set intersection, not an IN list of every secret
        values = set(df.select(strings).toPandas().stack().dropna())
        assert values, f"{layer}/{name} has no string values to check"
        leaked = values & secrets
        assert not leaked, f"{layer}/{name} holds PII: {sorted(leaked)[:3]}"
    hashed = wh.read(spark, "silver", "customers").select("email_hash").first()[0]
    assert len(hashed) == 64


def test_runs_and_quality_results_are_recorded(spark: SparkSession, small_refresh) -> None:
    settings, _, summary = small_refresh
    wh = _wh(settings)
    runs = wh.read(spark, "ops", "runs").where(F.col("run_id") == summary.run_id)
    stages = {r["stage"]: r["status"] for r in runs.collect()}
    assert stages == {s.stage: "succeeded" for s in summary.stages}
    # every commit of the run carries its run id (what rollback and lineage read)
    for layer, name in (("silver", "order_lines"), ("silver", "products"), ("gold", "forecasts")):
        history = DeltaTable.forPath(spark, wh.path(layer, name)).history().collect()
        assert {ops.read_tag(h["userMetadata"]).get("run_id") for h in history} == {
            summary.run_id
        }, name
    results = wh.read(spark, "ops", "quality_results").where(F.col("run_id") == summary.run_id)
    recorded = [(r["table_name"], r["rule"]) for r in results.collect()]
    configured = {(r.table, r.name) for r in settings.quality.rules}
    # and the dimensions' repeated-key counts (the dimension files were loaded in this run)
    dimensions = {
        (f"silver/{name}", "unique_key")
        for name in ("products", "customers", "inventory")
        if wh.exists(spark, "silver", name)
    }
    assert set(recorded) == configured | dimensions
    # each gold rule once: the sales history and snapshot results are recorded together
    gold = [key for key in recorded if key[0].startswith("gold/")]
    assert sorted(gold) == sorted(key for key in configured if key[0].startswith("gold/"))


def test_refresh_twice_leaves_identical_tables(
    spark: SparkSession, small_refresh, tmp_path: Path
) -> None:
    settings, _, _ = small_refresh
    copy = tmp_path / "warehouse"
    shutil.copytree(settings.paths.warehouse, copy)
    again_settings = settings.with_overrides(paths={"warehouse": str(copy)})
    for name in ("sales_daily", "sales_weekly"):
        # the earlier layout (not partitioned, no month column): the rerun rebuilds it
        legacy = _wh(again_settings).read(spark, "gold", name).drop("month").localCheckpoint()
        _wh(again_settings).overwrite(legacy, "gold", name)
        detail = DeltaTable.forPath(spark, _wh(again_settings).path("gold", name)).detail()
        assert detail.first()["partitionColumns"] == []
    # the warehouse stages: the tables compared below are theirs (the model stages' reruns are
    # covered by their own tests)
    again = refresh(spark, again_settings, SMALL_AS_OF, ("ingest", "silver", "gold"))
    assert again.stage("silver").summary["reconciliation"]["raw_lines_read"] == 0
    before, after = _wh(settings), _wh(again_settings)
    tables = [
        ("silver", "order_lines"), ("gold", "sales_daily"), ("gold", "sales_weekly"),
        ("gold", "customer_features"), ("gold", "interactions"), ("quarantine", "orders_rejected"),
    ]  # fmt: skip
    for layer, name in tables:
        a = comparable(before.read(spark, layer, name))
        b = comparable(after.read(spark, layer, name))
        assert a.count() == b.count(), name
        assert a.exceptAll(b).isEmpty() and b.exceptAll(a).isEmpty(), name
    for name in ("sales_daily", "sales_weekly"):
        detail = DeltaTable.forPath(spark, after.path("gold", name)).detail().first()
        assert detail["partitionColumns"] == ["month"], name
