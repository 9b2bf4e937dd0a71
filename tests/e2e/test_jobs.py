"""The jobs end to end in this process: ingest then features on tiny data, the JSON summary on
the last stdout line, exit codes, and tables registered by name when a schema prefix is set."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from e2e_helpers import TINY_AS_OF, TINY_DAILY_UNITS, write_tiny_landing
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from salesopt import jobs
from salesopt.io.tables import Warehouse
from salesopt.summary import read_summary

pytestmark = [pytest.mark.spark, pytest.mark.e2e]


def test_ingest_and_features_jobs_register_tables_by_name(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = tmp_path / "landing"
    expected = write_tiny_landing(landing)
    prefix = f"so_{uuid.uuid4().hex[:8]}"
    argv = [
        "--conf", "conf/test.yaml", "--as-of", TINY_AS_OF, "--warehouse", str(tmp_path / "wh"),
        "--landing", str(landing), "--set", f"catalog.schema_prefix={prefix}",
        "--run-id", "job-run",
    ]  # fmt: skip
    try:
        assert jobs.execute("ingest", argv) == 0
        ingest = read_summary(capsys.readouterr().out)
        assert [s["stage"] for s in ingest["stages"]] == ["ingest", "silver"]
        assert ingest["run_id"] == "job-run"
        reconciliation = ingest["stages"][1]["summary"]["reconciliation"]
        assert {k: reconciliation[k] for k in expected} == expected
        assert jobs.execute("features", argv) == 0
        features = read_summary(capsys.readouterr().out)
        assert [s["stage"] for s in features["stages"]] == ["gold"]

        wh = Warehouse.from_settings(jobs.load_job_settings(jobs.parse_args(argv, "features")))
        for layer, name in [("silver", "order_lines"), ("gold", "sales_daily"), ("ops", "runs")]:
            qualified = f"{prefix}_{layer}.{name}"
            assert spark.catalog.tableExists(qualified), f"{qualified} is not registered"
            by_name = spark.table(qualified)
            assert by_name.count() == wh.read(spark, layer, name).count() > 0
        daily = spark.table(f"{prefix}_gold.sales_daily")
        units = {(r["product_id"], str(r["date"])): r["units"] for r in daily.collect()}
        assert units == TINY_DAILY_UNITS
        runs = spark.table(f"{prefix}_ops.runs").where(F.col("run_id") == "job-run")
        assert sorted(r["stage"] for r in runs.collect()) == ["gold", "ingest", "silver"]
    finally:
        for layer in ("bronze", "silver", "gold", "quarantine", "ops"):
            spark.sql(f"DROP SCHEMA IF EXISTS {prefix}_{layer} CASCADE")


def test_failed_run_exits_1_with_one_line_reason(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--conf", "conf/test.yaml", "--as-of", TINY_AS_OF, "--warehouse", str(tmp_path / "wh"),
            "--landing", str(tmp_path / "missing")]  # fmt: skip
    assert jobs.execute("ingest", argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"salesopt: landing folder not found: {tmp_path / 'missing'}/orders" in captured.err
