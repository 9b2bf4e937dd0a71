"""The one entry end to end: `spark-submit jobs/main.py refresh ...` on a local master (the driver
a cluster runs; the cluster itself is tests/cluster), and `salesopt.cli.main` in this process for
the slices the scheduled tasks run (ingest,silver then gold): the JSON summary on the last stdout
line, exit codes, and tables registered by name when a schema prefix is set."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pyspark
import pytest
from e2e_helpers import ROOT, TINY_AS_OF, TINY_DAILY_UNITS, subprocess_env, write_tiny_landing
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import salesopt
from salesopt import cli
from salesopt.io.tables import Warehouse
from salesopt.summary import read_summary

pytestmark = [pytest.mark.spark, pytest.mark.e2e]

SPARK_HOME = Path(pyspark.__file__).resolve().parent
TEST_CONF = ROOT / "conf" / "test.yaml"


def spark_submit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`spark-submit --master local[1] jobs/main.py <args>` with the Delta jars, from `cwd`."""
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("SPARK_")}
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP="127.0.0.1",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
    )
    jars = ",".join(str(j) for j in sorted((ROOT / ".jars").glob("*.jar")))
    cmd = [
        str(SPARK_HOME / "bin" / "spark-submit"), "--master", "local[1]", "--jars", jars,
        "--driver-memory", "1g", "--conf", "spark.ui.enabled=false",
        "--conf", "spark.sql.shuffle.partitions=4", str(ROOT / "jobs" / "main.py"), *args,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow  # spark-submit starts a driver JVM of its own
def test_spark_submit_of_jobs_main_py_refresh(spark: SparkSession, tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    expected = write_tiny_landing(landing)
    flags = ["--conf", str(TEST_CONF), "--as-of", TINY_AS_OF, "--warehouse", str(warehouse),
             "--landing", str(landing)]  # fmt: skip

    bad = spark_submit("refresh", *flags, "--stages", "ingest,bogus", cwd=tmp_path)
    # spark-submit merges the Python driver's stderr (salesopt's log) into its stdout
    output = bad.stdout + bad.stderr
    assert bad.returncode == 2, output[-3000:]
    assert "salesopt: configuration error: unknown stage(s) ['bogus']" in output
    assert "Spark session" not in output  # refused before a session started
    assert not warehouse.exists()

    done = spark_submit(
        "refresh", *flags, "--stages", "ingest,silver,gold", "--run-id", "submit-run", cwd=tmp_path
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    driver_log = done.stdout.splitlines()
    loaded = [line for line in driver_log if f"salesopt {salesopt.__version__} loaded from" in line]
    assert loaded and str(Path(salesopt.__file__).parent) in loaded[0], loaded
    assert any("Spark session from the launcher (master=local[1])" in line for line in driver_log)
    summary = read_summary(done.stdout)
    assert (summary["status"], summary["run_id"]) == ("succeeded", "submit-run")
    assert [s["stage"] for s in summary["stages"]] == ["ingest", "silver", "gold"]
    reconciliation = summary["stages"][1]["summary"]["reconciliation"]
    assert {k: reconciliation[k] for k in expected} == expected

    wh = Warehouse(str(warehouse))
    assert wh.read(spark, "silver", "order_lines").count() == expected["accepted"]
    daily = wh.read(spark, "gold", "sales_daily").collect()
    assert {(r["product_id"], str(r["date"])): r["units"] for r in daily} == TINY_DAILY_UNITS


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_task_slices_in_process_register_tables_by_name(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = tmp_path / "landing"
    expected = write_tiny_landing(landing)
    prefix = f"so_{uuid.uuid4().hex[:8]}"
    flags = [
        "--conf", "conf/test.yaml", "--as-of", TINY_AS_OF, "--warehouse", str(tmp_path / "wh"),
        "--landing", str(landing), "--set", f"catalog.schema_prefix={prefix}",
        "--run-id", "job-run",
    ]  # fmt: skip
    try:
        assert cli.main(["refresh", *flags, "--stages", "ingest,silver"]) == 0
        ingest = read_summary(capsys.readouterr().out)
        assert [s["stage"] for s in ingest["stages"]] == ["ingest", "silver"]
        assert ingest["run_id"] == "job-run"
        reconciliation = ingest["stages"][1]["summary"]["reconciliation"]
        assert {k: reconciliation[k] for k in expected} == expected
        assert cli.main(["refresh", *flags, "--stages", "gold"]) == 0
        features = read_summary(capsys.readouterr().out)
        assert [s["stage"] for s in features["stages"]] == ["gold"]

        wh = Warehouse.from_settings(cli.settings_from(cli.parse_args(["refresh", *flags])))
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


@pytest.mark.slow  # whole refreshes: make test-e2e
def test_failed_run_exits_1_with_one_line_reason(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "refresh", "--conf", "conf/test.yaml", "--as-of", TINY_AS_OF,
        "--warehouse", str(tmp_path / "wh"), "--landing", str(tmp_path / "missing"),
    ]  # fmt: skip
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"salesopt: no orders folder at {tmp_path / 'missing'}/orders: " in captured.err
