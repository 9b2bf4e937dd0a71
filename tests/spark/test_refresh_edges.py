"""Refresh edge cases on tiny hand-written landing data: drift, empty input, late data, crashes,
quality gates, CSV."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from salesopt import ingest, ops
from salesopt.config import QualityRule
from salesopt.context import StageContext
from salesopt.errors import InputError, QualityGateFailed
from salesopt.io.tables import Warehouse
from salesopt.maintain import maintain
from salesopt.pipeline import WAREHOUSE_STAGES, refresh, run_stage

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
CORE = WAREHOUSE_STAGES


def line(order: str, no: int, qty: int = 1, ts: str = "2025-03-03T10:00:00Z", **extra) -> str:
    record = {
        "order_id": order, "line_no": no, "customer_id": "C1", "product_id": "P1",
        "quantity": qty, "unit_price": 2.5, "discount": 0.0, "order_ts": ts, "updated_at": ts,
        "status": "completed", "channel": "web", **extra,
    }  # fmt: skip
    return json.dumps(record)


def write_landing(root: Path, files: dict[str, list[str]]) -> None:
    (root / "products").mkdir(parents=True, exist_ok=True)
    (root / "customers").mkdir(parents=True, exist_ok=True)
    (root / "products" / "p.csv").write_text(
        "product_id,product_name,category,unit_cost,list_price,launch_date,status\n"
        "P1,Milk,dairy,1.0,2.5,2024-01-01,active\nP2,Bread,bakery,1.0,3.0,2024-01-01,active\n"
    )
    (root / "customers" / "c.csv").write_text(
        "customer_id,name,email,phone,region,signup_date\n"
        "C1,Ana Smith,ana@x.org,+1-555-1,north,2024-01-01\n"
    )
    for name, lines in files.items():
        path = root / "orders" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{text}\n" for text in lines))


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_schema_drift_is_rescued_and_reported(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    settings = settings_for()
    big = line("O1", 3, qty=20000, store_id="S1", promo="PR-9")  # a promotion week's bulk line
    write_landing(
        tmp_path / "landing",
        {"batch_date=2025-03-03/a.json": [line("O1", 1, loyalty_tier="gold"), line("O1", 2), big]},
    )
    summary = refresh(spark, settings, date(2025, 3, 3), CORE)
    rec = summary.stage("silver").summary["reconciliation"]
    assert rec["rows_with_rescued_fields"] == 1
    wh = Warehouse.from_settings(settings)
    silver = wh.read(spark, "silver", "order_lines")
    rescued = silver.where("line_no = 1").first()["_rescued_data"]
    assert json.loads(rescued) == {"loyalty_tier": "gold"}
    # the default quantity rule warns and keeps the line (quarantining the biggest lines would
    # censor the high-demand weeks the elasticity needs); store_id and promo land in silver
    assert rec["quarantined"] == 0
    kept = silver.where("line_no = 3").first()
    assert (kept["quantity"], kept["store_id"], kept["promo"]) == (20000, "S1", True)
    checks = wh.read(spark, "ops", "quality_results").where("rule = 'quantity_plausible'")
    assert [(r["action"], r["rows_failed"]) for r in checks.collect()] == [("warn", 1)]


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_empty_folder_then_empty_file(spark: SparkSession, settings_for, tmp_path: Path) -> None:
    settings = settings_for()
    write_landing(tmp_path / "landing", {})
    (tmp_path / "landing" / "orders").mkdir(parents=True)
    first = refresh(spark, settings, date(2025, 3, 3), CORE)
    assert first.stage("ingest").summary["files"] == 0
    # no order yet: the first stage that needs customers says so and what to check
    with pytest.raises(InputError, match=r"no customer has an accepted order line on or before "
                       r"2025-03-03, so there is nothing to segment: check that orders were "
                       r"delivered under .*/landing/orders"):  # fmt: skip
        refresh(spark, settings, date(2025, 3, 3), ("segment",))
    write_landing(tmp_path / "landing", {"batch_date=2025-03-04/empty.json": []})
    second = refresh(spark, settings, date(2025, 3, 4), CORE)
    assert second.stage("ingest").summary == {
        "batch_id": "b00000001", "files": 1, "lines": 0, "replayed": False,
        "files_delivered_later": 0,
    }  # fmt: skip
    third = refresh(spark, settings, date(2025, 3, 4), ("ingest",))
    assert third.stage("ingest").summary["files"] == 0


def test_missing_landing_folder_is_a_clear_error(spark: SparkSession, settings_for) -> None:
    settings = settings_for(paths={"landing": "/nonexistent/landing"})
    with pytest.raises(InputError, match="no orders folder at /nonexistent/landing/orders: "):
        refresh(spark, settings, date(2025, 3, 3), ("ingest",))


def _month_files(wh: Warehouse, name: str, month: str) -> list[str]:
    files = sorted(
        p.name for p in (Path(wh.path("gold", name)) / f"month={month}").glob("*.parquet")
    )
    assert files, f"no files in gold/{name} month={month}"
    return files


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_late_and_resent_lines_update_the_right_dates(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    settings = settings_for()
    landing = tmp_path / "landing"
    write_landing(
        landing,
        {
            "batch_date=2025-01-20/f.json": [line("O0", 1, 6, ts="2025-01-20T08:00:00Z")],
            "batch_date=2025-03-03/a.json": [
                line("O1", 1, 2), line("O2", 1, 5),
                line("O5", 1, 1, ts="2025-03-02T08:00:00Z", product_id="P2"),
                # a day the second batch does not touch, in a week it does
                line("O6", 1, 7, ts="2025-02-26T08:00:00Z"),
            ],
        },
    )  # fmt: skip
    first = refresh(spark, settings, date(2025, 3, 3), CORE)
    wh = Warehouse.from_settings(settings)
    january = {
        name: _month_files(wh, name, "2025-01-01") for name in ("sales_daily", "sales_weekly")
    }
    later = "2025-03-05T09:00:00Z"
    write_landing(
        landing,
        {
            "batch_date=2025-03-06_late/b.json": [
                line("O3", 1, 4, ts="2025-03-01T08:00:00Z"),
                line("O1", 1, 3, updated_at=later),
                line("O2", 1, 9, updated_at="2025-03-02T00:00:00Z"),
                # re-sent under another product: P2 has no line left on 2025-03-02
                line("O5", 1, 1, ts="2025-03-02T08:00:00Z", updated_at=later),
            ]
        },
    )
    summary = refresh(spark, settings, date(2025, 3, 6), CORE)
    rec = summary.stage("silver").summary["reconciliation"]
    assert (rec["raw_lines_read"], rec["accepted"], rec["superseded_duplicates"]) == (4, 3, 1)
    silver = {
        (r["order_id"], r["quantity"]) for r in wh.read(spark, "silver", "order_lines").collect()
    }
    assert silver == {("O0", 6), ("O1", 3), ("O2", 5), ("O3", 4), ("O5", 1), ("O6", 7)}
    daily = wh.read(spark, "gold", "sales_daily").collect()
    assert {(r["product_id"], str(r["date"]), r["units"]) for r in daily} == {
        ("P1", "2025-01-20", 6), ("P1", "2025-02-26", 7), ("P1", "2025-03-01", 4),
        ("P1", "2025-03-02", 1), ("P1", "2025-03-03", 8),
    }  # fmt: skip
    # only the touched dates were recomputed; the untouched day keeps the first run's row
    recomputed_by = {str(r["date"]): r["run_id"] for r in daily}
    assert recomputed_by["2025-02-26"] == recomputed_by["2025-01-20"] == first.run_id
    assert {recomputed_by[d] for d in ("2025-03-01", "2025-03-02", "2025-03-03")} == {
        summary.run_id
    }
    weekly = wh.read(spark, "gold", "sales_weekly").collect()
    assert {(str(r["week_start"]), r["units"]) for r in weekly} == {
        ("2025-01-20", 6), ("2025-02-24", 12), ("2025-03-03", 8)
    }  # fmt: skip
    # a changed week is recomputed from the lines of all its days, the untouched one included
    assert {r["run_id"] for r in weekly if str(r["week_start"]) != "2025-01-20"} == {summary.run_id}
    for name, files in january.items():
        # partitioned by month: the update rewrote only the months of the changed weeks
        detail = DeltaTable.forPath(spark, wh.path("gold", name)).detail().first()
        assert detail["partitionColumns"] == ["month"]
        assert _month_files(wh, name, "2025-01-01") == files, name
    first_day = date(2025, 3, 3)
    original = wh.read_as_of(spark, "gold", "interactions", first_day)
    original_qty = original.where("product_id = 'P1'").select("quantity").first()[0]
    backfill = refresh(spark, settings, first_day, CORE)
    assert backfill.stage("gold").summary["silver_version_read"] is not None
    again = wh.read_as_of(spark, "gold", "interactions", first_day)
    assert original_qty == again.where("product_id = 'P1'").select("quantity").first()[0] == 20


def test_files_delivered_after_as_of_wait(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    settings = settings_for()
    write_landing(
        tmp_path / "landing",
        {
            "batch_date=2025-03-03/a.json": [line("O1", 1)],
            "batch_date=2025-03-09/b.json": [line("O2", 1)],
        },
    )
    first = refresh(spark, settings, date(2025, 3, 3), ("ingest",))
    assert first.stage("ingest").summary["files"] == 1
    second = refresh(spark, settings, date(2025, 3, 9), ("ingest",))
    assert second.stage("ingest").summary["files"] == 1


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_crash_between_bronze_and_bookkeeping_is_replayed_once(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    settings = settings_for()
    write_landing(
        tmp_path / "landing", {"batch_date=2025-03-03/a.json": [line("O1", 1), line("O1", 2)]}
    )
    wh = Warehouse.from_settings(settings)
    ctx = StageContext(spark, settings, wh, date(2025, 3, 3), "crashed-run")
    batch, replay, _later = ingest.plan_batch(ctx, str(tmp_path / "landing" / "orders"))
    assert batch is not None and not replay
    ops.log_batch(ctx, batch, "pending", None)
    raw = ingest.read_raw_lines(spark, batch, ingested_at=datetime(2025, 3, 3))
    raw.write.format("delta").mode("append").option("txnAppId", ingest.TXN_APP_ID).option(
        "txnVersion", batch.seq
    ).partitionBy("_batch_id").save(wh.path("bronze", "orders_raw"))
    summary = refresh(spark, settings, date(2025, 3, 3), CORE)
    assert summary.stage("ingest").summary["replayed"] is True
    assert wh.read(spark, "bronze", "orders_raw").count() == 2
    assert wh.read(spark, "silver", "order_lines").count() == 2


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_batch_states_a_run_keeps_are_the_batch_log(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    settings = settings_for()
    write_landing(tmp_path / "landing", {"batch_date=2025-03-03/a.json": [line("O1", 1)]})
    wh = Warehouse.from_settings(settings)
    ctx = StageContext(spark, settings, wh, date(2025, 3, 3), "kept-run")
    for name in CORE:  # the stages update the states read by ingest with their own appends
        run_stage(ctx, name)
    kept = ops.latest_batch_states(ctx)
    read = ops.latest_batch_states(StageContext(spark, settings, wh, ctx.as_of, "reader"))
    assert kept == read
    assert [(s["status"], s["lines"], s["run_id"]) for s in read] == [("published", 1, "kept-run")]


def test_fail_expectation_stops_before_anything_downstream(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    rule = QualityRule(
        table="silver/order_lines", name="small_orders", expr="quantity <= 3", action="fail"
    )
    settings = settings_for(quality={"rules": [rule.model_dump()]})
    write_landing(
        tmp_path / "landing", {"batch_date=2025-03-03/a.json": [line("O1", 1, 2), line("O2", 1, 7)]}
    )
    with pytest.raises(QualityGateFailed, match=r"small_orders: 1 rows fail 'quantity <= 3'"):
        refresh(spark, settings, date(2025, 3, 3), CORE)
    wh = Warehouse.from_settings(settings)
    assert not wh.exists(spark, "silver", "order_lines")
    assert not wh.exists(spark, "gold", "sales_daily")
    runs = wh.read(spark, "ops", "runs")
    assert runs.where("stage = 'silver' AND status = 'failed'").count() == 1
    # the failing rule's counts are recorded before the run stops
    recorded = wh.read(spark, "ops", "quality_results").where("rule <> 'unique_key'").collect()
    assert [
        (r["table_name"], r["rule"], r["action"], r["rows_checked"], r["rows_failed"], r["passed"])
        for r in recorded
    ] == [("silver/order_lines", "small_orders", "fail", 2, 1, False)]


@pytest.mark.slow  # whole refreshes: make test-e2e (the limits: tests/unit/test_rejected_share.py)
def test_a_binary_file_in_orders_is_named_and_stops_the_batch_unless_warned(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    import random

    landing = tmp_path / "landing"
    good = [line(f"O{i}", 1) for i in range(12)]
    truncated = good[-1][:40]  # a line cut off in transfer: one malformed line of twelve
    write_landing(landing, {"batch_date=2025-03-03/a.json": [*good[:-1], truncated]})
    noise = random.Random(7)
    chunks = (noise.randbytes(60).replace(b"\n", b" ").replace(b"\r", b" ") for _ in range(30))
    blob = b"\n".join(chunks)  # 30 lines of binary noise
    (landing / "orders" / "batch_date=2025-03-03" / "export.xlsx").write_bytes(blob)
    settings = settings_for()
    with pytest.raises(
        QualityGateFailed,
        match=r"export\.xlsx: 30 of 30 lines rejected \(100%, mostly malformed_record\), above "
        r"clean.max_rejected_share_per_file = 0.5 \(and 1 more\): nothing of batch b00000001 "
        r"was written",
    ):
        refresh(spark, settings, date(2025, 3, 3), ("ingest", "silver"))
    wh = Warehouse.from_settings(settings)
    assert not wh.exists(spark, "silver", "order_lines")
    assert not wh.exists(spark, "quarantine", "orders_rejected")
    per_file = {
        Path(r["source_file"]).name: (r["lines"], r["quarantined"], r["top_reason"])
        for r in wh.read(spark, "ops", "source_files").collect()
    }
    assert per_file == {"a.json": (12, 1, "malformed_record"), "export.xlsx": (30, 30,
                        "malformed_record")}  # fmt: skip
    # warned instead: the batch loads, the rejects are quarantined, the findings are reported
    warned = settings.with_overrides(clean={"rejected_share_action": "warn"})
    summary = refresh(spark, warned, date(2025, 3, 3), ("ingest", "silver"))
    rec = summary.stage("silver").summary["reconciliation"]
    assert (rec["raw_lines_read"], rec["accepted"], rec["quarantined"]) == (42, 11, 31)
    assert [f.split(": ")[0].rsplit("/", 1)[-1] for f in rec["rejected_share_findings"]] == [
        "export.xlsx", "batch b00000001"
    ]  # fmt: skip


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_failing_gold_rule_is_recorded_and_stops_before_gold_tables(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    rules = [
        QualityRule(table="silver/order_lines", name="known", expr="quantity <> 0", action="warn"),
        QualityRule(table="gold/sales_daily", name="small_days", expr="units <= 2", action="fail"),
    ]
    settings = settings_for(quality={"rules": [r.model_dump() for r in rules]})
    write_landing(
        tmp_path / "landing", {"batch_date=2025-03-03/a.json": [line("O1", 1, 2), line("O2", 1, 7)]}
    )
    with pytest.raises(QualityGateFailed, match=r"gold/sales_daily.small_days: 1 rows fail"):
        refresh(spark, settings, date(2025, 3, 3), CORE)
    wh = Warehouse.from_settings(settings)
    assert wh.read(spark, "silver", "order_lines").count() == 2  # silver passed its gate
    for name in ("sales_daily", "sales_weekly", "customer_features", "interactions"):
        assert not wh.exists(spark, "gold", name)
    recorded = wh.read(spark, "ops", "quality_results").where("rule <> 'unique_key'").collect()
    assert sorted(
        (r["table_name"], r["rule"], r["rows_checked"], r["rows_failed"]) for r in recorded
    ) == [("gold/sales_daily", "small_days", 1, 1), ("silver/order_lines", "known", 2, 0)]
    runs = wh.read(spark, "ops", "runs").where("stage = 'gold'").collect()
    assert [r["status"] for r in runs] == ["failed"]


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_quarantine_expectation_and_csv_source(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    rule = QualityRule(
        table="silver/order_lines",
        name="has_channel",
        expr="channel IS NOT NULL",
        action="quarantine",
    )
    settings = settings_for(quality={"rules": [rule.model_dump()]}, ingest={"format": "csv"})
    header = (
        "order_id,line_no,customer_id,product_id,quantity,unit_price,discount,currency,"
        "order_ts,updated_at,status,channel"
    )
    rows = [
        header,
        "O1,1,C1,P1,2,2.5,0,USD,2025-03-03T10:00:00Z,2025-03-03T10:00:00Z,completed,web",
        "O2,1,C1,P2,1,3.0,0,USD,2025-03-03T11:00:00Z,2025-03-03T11:00:00Z,completed,",
        "O3,1,C1,P2,one,3.0,0,USD,2025-03-03T11:00:00Z,2025-03-03T11:00:00Z,completed,app",
        "broken line",
    ]
    write_landing(tmp_path / "landing", {"batch_date=2025-03-03/a.csv": rows})
    summary = refresh(spark, settings, date(2025, 3, 3), CORE)
    rec = summary.stage("silver").summary["reconciliation"]
    assert (rec["raw_lines_read"], rec["accepted"], rec["quarantined"]) == (4, 1, 3)
    reasons = summary.stage("silver").summary["quarantine_reasons"]
    assert reasons == {"rule:has_channel": 1, "wrong_type": 1, "malformed_record": 1}
    q = Warehouse.from_settings(settings).read(spark, "quarantine", "orders_rejected")
    assert q.where(F.col("raw") == "broken line").count() == 1


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_dimensions_reload_only_when_their_files_or_the_key_change(
    spark: SparkSession, settings_for, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for()
    landing = tmp_path / "landing"
    write_landing(landing, {"batch_date=2025-03-03/a.json": [line("O1", 1)]})
    wh = Warehouse.from_settings(settings)
    dims = ("silver/products", "silver/customers")

    def silver_tables(as_of: date) -> dict[str, int | None]:
        tables = refresh(spark, settings, as_of, ("ingest", "silver")).stage("silver").tables
        return {name: tables[name] for name in dims}

    first = silver_tables(date(2025, 3, 3))
    hashes = wh.read(spark, "silver", "customers").first()
    assert silver_tables(date(2025, 3, 4)) == first  # nothing changed: no new commit

    with (landing / "products" / "p.csv").open("a") as f:
        f.write("P3,Eggs,dairy,1.0,4.0,2024-01-01,active\n")
    third = silver_tables(date(2025, 3, 5))
    assert third["silver/products"] == first["silver/products"] + 1
    assert third["silver/customers"] == first["silver/customers"]
    assert wh.read(spark, "silver", "products").where("product_id = 'P3'").count() == 1

    monkeypatch.setenv(settings.clean.pii_key_env, "another-secret-key")
    fourth = silver_tables(date(2025, 3, 6))
    assert fourth["silver/products"] == third["silver/products"]
    assert fourth["silver/customers"] == first["silver/customers"] + 1
    rehashed = wh.read(spark, "silver", "customers").first()
    assert rehashed["email_hash"] != hashes["email_hash"]


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_maintain_expires_old_slices_keeps_month_ends_compacts_and_vacuums(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    settings = settings_for(maintain={"snapshot_retention_days": 1, "vacuum_retention_hours": 0})
    wh = Warehouse.from_settings(settings)
    days = (date(2025, 2, 27), date(2025, 2, 28), date(2025, 3, 5))
    for day in days:
        # a snapshot table (one complete slice per as_of) and a log of small appends
        rows = spark.createDataFrame([(f"C{i}", i) for i in range(3)], "customer_id string, n int")
        wh.write_slice(rows.withColumn("as_of", F.lit(day)), "gold", "customer_segments", day)
        wh.append(spark.createDataFrame([(day, "gold")], "as_of date, stage string"), "ops", "runs")
    wh.overwrite(
        spark.createDataFrame([(days[0], 5)], "date date, units int"), "gold", "sales_daily"
    )
    runs_dir = Path(wh.path("ops", "runs"))
    assert len(list(runs_dir.glob("*.parquet"))) >= len(days)  # at least one file per append

    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    spark.conf.set(check, "false")  # a 0 h retention is refused otherwise, by design
    try:
        report = maintain(spark, settings)
    finally:
        spark.conf.unset(check)

    tables = report["tables"]
    assert set(tables) == {"gold/customer_segments", "gold/sales_daily", "ops/runs"}
    # kept: within 1 day of the newest (03-05) and February's last as_of (02-28)
    expired = tables["gold/customer_segments"]
    assert (expired["slices_deleted"], expired["rows_deleted"]) == (1, 3)
    kept = wh.read(spark, "gold", "customer_segments").groupBy("as_of").count().collect()
    assert sorted((r["as_of"], r["count"]) for r in kept) == [(days[1], 3), (days[2], 3)]
    gone = Path(wh.path("gold", "customer_segments")) / "as_of=2025-02-27"
    assert not list(gone.glob("*.parquet"))  # its files are vacuumed
    assert "slices_deleted" not in tables["gold/sales_daily"]  # not a snapshot table
    assert wh.read(spark, "gold", "sales_daily").count() == 1
    assert tables["ops/runs"]["files_added"] == 1 < tables["ops/runs"]["files_removed"]
    assert len(list(runs_dir.glob("*.parquet"))) == 1  # compacted, then the old files vacuumed
    assert wh.read(spark, "ops", "runs").count() == len(days)


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_maintain_keeps_only_the_window_without_month_ends(
    spark: SparkSession, settings_for
) -> None:
    settings = settings_for(
        maintain={"snapshot_retention_days": 0, "snapshot_keep_month_ends": False,
                  "optimize": False},
    )  # fmt: skip
    wh = Warehouse.from_settings(settings)
    for day in (date(2025, 1, 31), date(2025, 2, 1)):
        rows = spark.createDataFrame([("C1", day)], "customer_id string, as_of date")
        wh.write_slice(rows, "gold", "customer_segments", day)
    report = maintain(spark, settings, vacuum=False)
    assert report["tables"]["gold/customer_segments"]["slices_deleted"] == 1
    left = [r["as_of"] for r in wh.read(spark, "gold", "customer_segments").collect()]
    assert left == [date(2025, 2, 1)]
