"""One refresh at a time: the local guard, Delta's optimistic concurrency, two real processes.

- `ops.local_guard` refuses (or waits for) a second run on a local warehouse and is released by
  the operating system when its holder dies;
- a commit that loses to a concurrent writer raises Delta's typed exception, which a stage
  reports as one line;
- two refresh processes started at once on one warehouse leave it intact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from e2e_helpers import ROOT, TINY_AS_OF, cli_refresh_cmd, start, subprocess_env, write_tiny_landing
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from salesopt import ops, pipeline
from salesopt.context import StageContext, StageResult
from salesopt.errors import SalesoptError, SetupError, WarehouseLocked
from salesopt.io.tables import Warehouse
from salesopt.pipeline import refresh
from salesopt.summary import read_summary


def test_a_second_run_on_a_local_warehouse_is_refused_naming_the_first(settings_for) -> None:
    settings = settings_for()
    with ops.local_guard(settings, "first-run"):
        with pytest.raises(WarehouseLocked) as refused, ops.local_guard(settings, "second"):
            pass
        assert "first-run" in str(refused.value) and "ops.lock_wait_s" in str(refused.value)
    with ops.local_guard(settings, "third"):  # released when the first run ended
        pass


def test_a_second_run_waits_when_configured(settings_for) -> None:
    settings = settings_for(ops={"lock_wait_s": 20})
    entered = threading.Event()
    held_for = 1.5

    def first() -> None:
        with ops.local_guard(settings, "first"):
            entered.set()
            time.sleep(held_for)

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait(10)
    t0 = time.monotonic()
    with ops.local_guard(settings, "second"):
        waited = time.monotonic() - t0
    thread.join()
    assert 0.5 < waited < 15


def test_a_killed_holder_leaves_no_lock_behind(settings_for, tmp_path: Path) -> None:
    """kill -9 of the holding process: the operating system releases the lock."""
    settings = settings_for()
    warehouse = settings.paths.warehouse
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time, pathlib\n"
            "from salesopt import ops\n"
            "from salesopt.config import load_settings\n"
            f"s = load_settings(None, overrides={{'paths.warehouse': {warehouse!r}}})\n"
            "with ops.local_guard(s, 'holder'):\n"
            f"    pathlib.Path({str(ready)!r}).touch()\n"
            "    time.sleep(600)\n"
        )],
        cwd=ROOT, env=subprocess_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        with pytest.raises(WarehouseLocked, match="holder"), ops.local_guard(settings, "me"):
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)
    with ops.local_guard(settings, "me"):  # nothing to clean up
        pass


@pytest.mark.parametrize(
    "root",
    ["s3a://bucket/wh", "abfss://c@acct.dfs.core.windows.net/wh", "gs://b/wh", "dbfs:/wh",
     "/Volumes/main/sales/wh", "/dbfs/mnt/wh"],
)  # fmt: skip
def test_no_guard_outside_the_local_file_system(root: str) -> None:
    assert ops.local_root(root) is None


def test_local_paths_are_guarded() -> None:
    assert ops.local_root("file:///tmp/wh") == Path("/tmp/wh")
    assert ops.local_root("warehouse") == Path("warehouse")


def test_an_unusable_warehouse_is_one_clear_error(settings_for, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = settings_for(paths={"warehouse": str(blocker / "wh")})
    refused = pytest.raises(SetupError, match=r"set paths\.warehouse to a writable folder")
    with refused, ops.local_guard(settings, "r"):
        pass


@pytest.mark.slow  # a raced MERGE: make test-e2e
@pytest.mark.spark
def test_a_lost_delta_commit_is_a_typed_error_and_one_line(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    """A MERGE reads the table, a concurrent overwrite of the same rows commits first, then the
    MERGE commits: Delta rejects it. The stage reports one line and records the failure."""
    settings = settings_for()
    wh = Warehouse.from_settings(settings)
    day = date(2025, 3, 3)
    rows = spark.createDataFrame([("C1", 1)], "customer_id string, n int").withColumn(
        "as_of", F.lit(day)
    )
    wh.write_slice(rows, "gold", "t", day)
    started, go = tmp_path / "started", tmp_path / "go"

    @F.udf("int")
    def wait_for_go(n):  # type: ignore[no-untyped-def]  # runs in the MERGE, after its read
        Path(started).touch()
        deadline = time.monotonic() + 120
        while not Path(go).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return n + 1

    def merge(_ctx: StageContext) -> StageResult:
        source = rows.withColumn("n", wait_for_go("n"))
        (
            DeltaTable.forPath(spark, wh.path("gold", "t")).alias("t")
            .merge(source.alias("s"), "t.customer_id = s.customer_id")
            .whenMatchedUpdateAll().execute()
        )  # fmt: skip
        return StageResult()

    def concurrent_overwrite() -> None:
        deadline = time.monotonic() + 120
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        wh.write_slice(rows.withColumn("n", F.lit(7)), "gold", "t", day)
        go.touch()

    other = threading.Thread(target=concurrent_overwrite)
    other.start()
    ctx = StageContext(spark, settings, wh, day, "loser")
    original = pipeline.STAGES["gold"]
    pipeline.STAGES["gold"] = merge
    try:
        with pytest.raises(SalesoptError) as failed:
            pipeline.run_stage(ctx, "gold")
    finally:
        pipeline.STAGES["gold"] = original
        go.touch()
        other.join(60)
    assert isinstance(failed.value.__cause__, pipeline.COMMIT_CONFLICTS)
    message = str(failed.value)
    assert "\n" not in message and "concurrent write" in message and "rerun this as_of" in message
    assert [r["n"] for r in wh.read(spark, "gold", "t").collect()] == [7]  # the winner's rows
    runs = wh.read(spark, "ops", "runs").collect()
    assert [(r["run_id"], r["status"]) for r in runs] == [("loser", "failed")]


# runs `salesopt.cli.main` with the silver batch step held until a file exists (test-side only)
_HELD_IN_SILVER = """
import sys, time, pathlib
import salesopt.silver as silver
release = pathlib.Path(sys.argv[1])
original = silver.clean_batch
def held(*args, **kwargs):
    while not release.exists():
        time.sleep(0.2)
    return original(*args, **kwargs)
silver.clean_batch = held
from salesopt.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.spark
@pytest.mark.e2e
@pytest.mark.slow
def test_two_refresh_processes_at_once(spark: SparkSession, base_settings, tmp_path: Path) -> None:
    """The first process is held inside its silver stage while the second one starts."""
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    expected = write_tiny_landing(landing)
    release = tmp_path / "release"
    cmd = cli_refresh_cmd(warehouse, landing, ("ingest", "silver"))
    held_cmd = [sys.executable, "-c", _HELD_IN_SILVER, str(release), *cmd[3:]]
    first_out, first_err = tmp_path / "first.out", tmp_path / "first.err"
    first = start(held_cmd, first_out, first_err)
    try:
        deadline = time.monotonic() + 600
        while "stage silver: started" not in first_err.read_text() and first.poll() is None:
            assert time.monotonic() < deadline, "the first refresh never reached silver"
            time.sleep(0.5)
        assert first.poll() is None, first_err.read_text()[-3000:]
        second = subprocess.run(
            cmd, env=subprocess_env(), capture_output=True, text=True, timeout=600
        )
        assert first.poll() is None, "the first refresh ended before the second one tried"
    finally:
        release.touch()
        first.wait(timeout=900)
    assert second.returncode == 1, second.stderr[-3000:]
    assert second.stdout == ""
    assert "salesopt: another run is refreshing warehouse" in second.stderr
    assert f'"pid": {first.pid}' in second.stderr
    assert first.returncode == 0, first_err.read_text()[-3000:]
    summary = read_summary(first_out.read_text())
    reconciliation = summary["stages"][1]["summary"]["reconciliation"]
    assert {k: reconciliation[k] for k in expected} == expected

    wh = Warehouse(str(warehouse))
    assert wh.read(spark, "bronze", "orders_raw").count() == expected["raw_lines_read"]
    assert wh.read(spark, "silver", "order_lines").count() == expected["accepted"]
    assert wh.read(spark, "quarantine", "orders_rejected").count() == expected["quarantined"]
    runs = wh.read(spark, "ops", "runs").collect()
    assert {(r["run_id"], r["stage"], r["status"]) for r in runs} == {
        (summary["run_id"], "ingest", "succeeded"), (summary["run_id"], "silver", "succeeded"),
    }  # fmt: skip
    settings = base_settings.with_overrides(
        paths={"warehouse": str(warehouse), "landing": str(landing)}
    )
    gold = refresh(spark, settings, date.fromisoformat(TINY_AS_OF), ("gold",))
    assert gold.stage("gold").summary["published_batches"] == 1
