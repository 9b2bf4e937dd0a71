"""One refresh per warehouse: a second one is refused (or waits), a stale lock is taken over, and
two real refresh processes started at once leave the warehouse intact. Both lock kinds: the lock
file and the row in the Delta table `ops/refresh_lock`."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from e2e_helpers import (
    CORE,
    ROOT,
    TINY_AS_OF,
    cli_refresh_cmd,
    start,
    subprocess_env,
    write_tiny_landing,
)
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

import salesopt.lock
import salesopt.maintain
import salesopt.pipeline
from salesopt.cli import main as cli_main
from salesopt.errors import SalesoptError, SetupError, WarehouseLocked
from salesopt.io.tables import Warehouse
from salesopt.lock import LOCK_NAME, LOCK_SCHEMA, LOCK_TABLE, lock_kind, unlock, warehouse_lock
from salesopt.maintain import maintain
from salesopt.pipeline import refresh
from salesopt.summary import read_summary

TEST_CONF = Path(__file__).resolve().parents[2] / "conf" / "test.yaml"


def write_lock(root: Path, heartbeat: float | None = None, **fields: object) -> Path:
    """A lock file as a run writes it; `heartbeat` (default: its start) is the modification time
    its renewals set."""
    root.mkdir(parents=True, exist_ok=True)
    payload = {
        "run_id": "crashed-run",
        "host": socket.gethostname(),
        "pid": 0,
        "started": time.time(),
        **fields,
    }
    path = root / LOCK_NAME
    path.write_text(json.dumps(payload))
    renewed = payload["started"] if heartbeat is None else heartbeat
    os.utime(path, (renewed, renewed))
    return path


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.spark
def test_second_refresh_is_refused_naming_the_holder(spark: SparkSession, settings_for) -> None:
    settings = settings_for()
    with warehouse_lock(settings, "first-run"):
        holder = rf"run first-run pid \d+ on {socket.gethostname()}"
        with pytest.raises(
            WarehouseLocked, match=rf"another run holds the warehouse lock .*{holder}"
        ):
            refresh(spark, settings, date(2025, 3, 4), CORE)
    assert not (Path(settings.paths.warehouse) / LOCK_NAME).exists()
    assert not Warehouse.from_settings(settings).exists(spark, "ops", "runs")


@pytest.mark.spark
def test_maintain_holds_the_same_lock(
    spark: SparkSession, settings_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for()
    with (
        warehouse_lock(settings, "refresh-run"),
        pytest.raises(WarehouseLocked, match=r"another run holds the warehouse lock .*refresh-run"),
    ):
        maintain(spark, settings)
    lock_file = Path(settings.paths.warehouse) / LOCK_NAME
    held_by: list[str] = []
    work = salesopt.maintain._maintain

    def watched(*args: object) -> dict:
        held_by.append(json.loads(lock_file.read_text())["run_id"])
        return work(*args)

    monkeypatch.setattr(salesopt.maintain, "_maintain", watched)
    assert maintain(spark, settings)["tables"] == {}  # an empty warehouse: nothing to do
    assert len(held_by) == 1 and held_by[0].startswith("maintain-"), held_by
    assert not lock_file.exists()


def test_lock_of_a_dead_process_is_taken_over(
    settings_for, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for()
    path = write_lock(Path(settings.paths.warehouse), pid=dead_pid())
    with caplog.at_level(logging.WARNING, "salesopt.lock"), warehouse_lock(settings, "new-run"):
        assert json.loads(path.read_text())["run_id"] == "new-run"
    assert "taking over a stale warehouse lock held by run crashed-run" in caplog.text
    assert not path.exists()


def test_a_lock_file_naming_no_run_is_reported_then_taken_over_once_stale(
    settings_for, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(ops={"lock_stale_s": 3600})
    root = Path(settings.paths.warehouse)
    root.mkdir(parents=True)
    lock_file = root / LOCK_NAME
    lock_file.write_text("")  # e.g. a process killed between create and write
    with (
        pytest.raises(WarehouseLocked, match=r"exists but names no run .* delete it"),
        warehouse_lock(settings, "new-run"),
    ):
        pass
    assert lock_file.exists()  # a fresh one is left: its run may be writing it right now
    flags = ["--conf", str(TEST_CONF), "--warehouse", str(root), "--run-id", "any-run"]
    assert cli_main(["unlock", *flags]) == 1
    assert "names no run (an unreadable lock file): nothing removed" in capsys.readouterr().err
    an_hour_ago = time.time() - 3700  # a live run writes its lock at once
    os.utime(lock_file, (an_hour_ago, an_hour_ago))
    with caplog.at_level(logging.WARNING, "salesopt.lock"), warehouse_lock(settings, "new-run"):
        assert json.loads(lock_file.read_text())["run_id"] == "new-run"
    assert "taking over a stale warehouse lock held by no run (an unreadable lock file)" in (
        caplog.text
    )


def test_a_lock_from_another_host_is_stale_when_not_renewed_for_lock_stale_s(settings_for) -> None:
    settings = settings_for(ops={"lock_stale_s": 3600})
    root = Path(settings.paths.warehouse)
    now = time.time()
    write_lock(root, host="other-node", pid=1, started=now - 60, heartbeat=now - 7200)
    with warehouse_lock(settings, "new-run"):
        assert json.loads((root / LOCK_NAME).read_text())["run_id"] == "new-run"
    # a run of ten hours that still renews its lock keeps it
    write_lock(root, host="other-node", pid=1, started=now - 36000, heartbeat=now - 60)
    with (
        pytest.raises(WarehouseLocked, match="run crashed-run pid 1 on other-node"),
        warehouse_lock(settings, "new-run"),
    ):
        pass


def test_a_run_renews_its_lock_and_keeps_it_past_lock_stale_s(settings_for) -> None:
    renewing = settings_for(ops={"lock_heartbeat_s": 0.1, "lock_stale_s": 0.5})
    lock_file = Path(renewing.paths.warehouse) / LOCK_NAME
    with warehouse_lock(renewing, "long-run") as held:
        taken = lock_file.stat().st_mtime
        time.sleep(1.5)
        assert lock_file.stat().st_mtime > taken + 1.0  # renewed by the heartbeat
        with (
            pytest.raises(WarehouseLocked, match=rf"run long-run pid {os.getpid()}"),
            warehouse_lock(renewing, "second-run"),
        ):
            pass
        held.check()  # still held
    # without renewals the same run's lock is stale once lock_stale_s has passed
    silent = settings_for(ops={"lock_heartbeat_s": 0, "lock_stale_s": 0.5})
    with warehouse_lock(silent, "long-run"):
        time.sleep(1.0)
        with warehouse_lock(silent, "second-run"):
            assert json.loads(lock_file.read_text())["run_id"] == "second-run"


def test_a_renewal_that_fails_on_storage_is_retried_not_taken_as_lost(
    settings_for, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(ops={"lock_heartbeat_s": 0.1, "lock_stale_s": 60})
    lock_file = Path(settings.paths.warehouse) / LOCK_NAME
    real_utime, failures = os.utime, [2]

    def flaky_utime(path: object, *args: object, **kwargs: object) -> None:
        if Path(str(path)) == lock_file and failures[0] > 0:
            failures[0] -= 1
            raise OSError("storage unavailable")
        real_utime(path, *args, **kwargs)  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING, "salesopt.lock"), warehouse_lock(settings, "run") as held:
        monkeypatch.setattr(os, "utime", flaky_utime)
        taken = lock_file.stat().st_mtime
        deadline = time.monotonic() + 30
        while lock_file.stat().st_mtime <= taken:  # renewed once the failures are spent
            assert time.monotonic() < deadline, "never renewed after the storage errors"
            time.sleep(0.1)
        held.check()  # not lost
    assert failures == [0]
    assert caplog.text.count("could not renew the warehouse lock") == 2
    assert "storage unavailable" in caplog.text


def test_a_run_whose_lock_was_taken_over_stops_before_its_next_stage(
    settings_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Spark stage runs: `run_stage` stands in and hands the lock to another run."""
    settings = settings_for(ops={"lock_heartbeat_s": 0.1, "lock_stale_s": 1.0})
    root = Path(settings.paths.warehouse)
    ran: list[str] = []

    def stage_that_loses_the_lock(ctx: object, name: str) -> None:
        ran.append(name)
        (root / LOCK_NAME).unlink()  # e.g. taken over after a long pause, or `salesopt unlock`
        write_lock(root, run_id="other-run", host="other-node", pid=1)
        time.sleep(1.0)  # the next renewal finds it

    monkeypatch.setattr(salesopt.pipeline, "run_stage", stage_that_loses_the_lock)
    with pytest.raises(
        WarehouseLocked,
        match=r"run lost-run lost the warehouse lock .* now held by run other-run pid 1 on "
        r"other-node; stopped before the next stage",
    ):
        refresh(None, settings, date(2025, 3, 4), ["ingest", "silver", "gold"], "lost-run")  # type: ignore[arg-type]
    assert ran == ["ingest"]
    assert json.loads((root / LOCK_NAME).read_text())["run_id"] == "other-run"  # left alone


def test_second_refresh_waits_when_configured(settings_for) -> None:
    settings = settings_for(ops={"lock_wait_s": 30})
    held = threading.Event()

    def hold_briefly() -> None:
        with warehouse_lock(settings, "first-run"):
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=hold_briefly)
    thread.start()
    held.wait(10)
    t0 = time.monotonic()
    with warehouse_lock(settings, "second-run"):
        waited = time.monotonic() - t0
    thread.join()
    assert 0.5 < waited < 30


def _lock_rows(spark: SparkSession, settings) -> list[dict]:
    path = Warehouse.from_settings(settings).path(*LOCK_TABLE)
    return [r.asDict() for r in spark.read.format("delta").load(path).collect()]


def _write_lock_row(spark: SparkSession, settings, **fields: object) -> None:
    row = {"name": "refresh", "run_id": "crashed-run", "host": "other-node", "pid": 1}
    row = {**row, "started": time.time(), **fields}
    path = Warehouse.from_settings(settings).path(*LOCK_TABLE)
    spark.createDataFrame([row], LOCK_SCHEMA).write.format("delta").mode("append").save(path)


@pytest.mark.spark
def test_delta_lock_refuses_a_second_refresh_and_takes_over_a_stale_holder(
    spark: SparkSession, settings_for, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(ops={"lock": "delta", "lock_stale_s": 3600})
    with warehouse_lock(settings, "first-run", spark):
        assert [r["run_id"] for r in _lock_rows(spark, settings)] == ["first-run"]
        holder = rf"run first-run pid {os.getpid()} on {socket.gethostname()}"
        with pytest.raises(
            WarehouseLocked,
            match=rf"holds the warehouse lock \(Delta table .*/ops/refresh_lock\): {holder}",
        ):
            refresh(spark, settings, date(2025, 3, 4), CORE)
    assert _lock_rows(spark, settings) == []
    assert not (Path(settings.paths.warehouse) / LOCK_NAME).exists()
    assert not Warehouse.from_settings(settings).exists(spark, "ops", "runs")

    _write_lock_row(spark, settings, started=time.time() - 7200)
    with caplog.at_level(logging.WARNING, "salesopt.lock"), warehouse_lock(settings, "new-run"):
        assert [r["run_id"] for r in _lock_rows(spark, settings)] == ["new-run"]
    assert "taking over a stale warehouse lock held by run crashed-run" in caplog.text
    assert _lock_rows(spark, settings) == []

    _write_lock_row(spark, settings, started=time.time() - 60)
    with (
        pytest.raises(WarehouseLocked, match="run crashed-run pid 1 on other-node"),
        warehouse_lock(settings, "new-run", spark),
    ):
        pass
    assert [r["run_id"] for r in _lock_rows(spark, settings)] == ["crashed-run"]
    # the operator knows that run is dead: `salesopt unlock --run-id crashed-run`
    with pytest.raises(SalesoptError, match=r"held by run crashed-run .*not by new-run"):
        unlock(settings, "new-run", spark)
    assert unlock(settings, "crashed-run", spark)["removed"] is True
    assert _lock_rows(spark, settings) == []


@pytest.mark.spark
def test_delta_lock_is_renewed_and_a_lost_lock_is_noticed(
    spark: SparkSession, settings_for
) -> None:
    settings = settings_for(ops={"lock": "delta", "lock_heartbeat_s": 0.5, "lock_stale_s": 3600})
    path = Warehouse.from_settings(settings).path(*LOCK_TABLE)
    # a lock table created before heartbeats: the column is added when the lock is taken
    before = StructType([f for f in LOCK_SCHEMA.fields if f.name != "heartbeat"])
    spark.createDataFrame([], before).write.format("delta").save(path)

    def wait_for(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 120
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.5)

    with warehouse_lock(settings, "long-run", spark) as held:
        (row,) = _lock_rows(spark, settings)
        assert row["heartbeat"] >= row["started"]  # set when taken, then renewed
        wait_for(
            lambda: _lock_rows(spark, settings)[0]["heartbeat"] > row["started"],
            "the heartbeat was never renewed",
        )
        held.check()
        DeltaTable.forPath(spark, path).delete()  # taken over by a run on another host
        _write_lock_row(spark, settings, run_id="other-run")
        wait_for(lambda: held.lost is not None, "the lost lock was never noticed")
        with pytest.raises(WarehouseLocked, match=r"now held by run other-run pid 1 on other-node"):
            held.check()
    assert [r["run_id"] for r in _lock_rows(spark, settings)] == ["other-run"]  # left alone

    # stale means not renewed for lock_stale_s, however long ago the run started
    now = time.time()
    DeltaTable.forPath(spark, path).delete()
    _write_lock_row(spark, settings, started=now - 36000, heartbeat=now - 60)
    with pytest.raises(WarehouseLocked), warehouse_lock(settings, "new-run", spark):
        pass
    DeltaTable.forPath(spark, path).delete()
    _write_lock_row(spark, settings, started=now - 60, heartbeat=now - 7200)
    with warehouse_lock(settings, "new-run", spark):
        assert [r["run_id"] for r in _lock_rows(spark, settings)] == ["new-run"]


@pytest.mark.spark
def test_delta_lock_two_refreshes_at_the_same_moment_one_wins(
    spark: SparkSession, settings_for
) -> None:
    """Both insert into the lock table at once; Delta commits one insert and rejects the other."""
    settings = settings_for(ops={"lock": "delta"})

    def contend(run_id: str, start_line: threading.Barrier, outcome: dict[str, str]) -> None:
        start_line.wait(30)
        try:
            with warehouse_lock(settings, run_id, spark):
                outcome[run_id] = "held"
                time.sleep(2.0)  # still held when the other one reads the winner's row
        except WarehouseLocked as exc:
            outcome[run_id] = str(exc)

    for round_ in range(2):  # the first round also races to create the lock table
        start_line = threading.Barrier(2)
        outcome: dict[str, str] = {}
        runs = [f"run-a{round_}", f"run-b{round_}"]
        threads = [threading.Thread(target=contend, args=(r, start_line, outcome)) for r in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        winners = [r for r in runs if outcome.get(r) == "held"]
        assert len(winners) == 1, outcome
        (loser,) = set(runs) - set(winners)
        assert f"run {winners[0]} pid {os.getpid()}" in outcome[loser]
        assert _lock_rows(spark, settings) == []


@pytest.mark.spark
def test_delta_lock_on_unusable_storage_is_a_clear_error(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    settings = settings_for(paths={"warehouse": str(not_a_folder / "wh")}, ops={"lock": "delta"})
    with (
        pytest.raises(SetupError, match=r"cannot take the warehouse lock in Delta table .*a-file"),
        warehouse_lock(settings, "a-run", spark),
    ):
        pass


def test_unlock_removes_only_the_named_runs_lock(
    settings_for, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for()
    root = Path(settings.paths.warehouse)
    path = write_lock(root, host="other-node", pid=1)
    flags = ["--conf", str(TEST_CONF), "--warehouse", str(root)]
    assert cli_main(["unlock", *flags, "--run-id", "some-other-run"]) == 1
    err = capsys.readouterr().err
    assert "held by run crashed-run pid 1 on other-node, not by some-other-run" in err
    assert path.exists()
    assert cli_main(["unlock", *flags, "--run-id", "crashed-run"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {
        "lock": str(path), "held_by": "crashed-run", "removed": True
    }  # fmt: skip
    assert not path.exists()
    assert cli_main(["unlock", *flags, "--run-id", "crashed-run"]) == 0  # nothing held
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["removed"] is False


def test_renewal_pool_is_skipped_without_a_spark_context() -> None:
    """Spark Connect sessions have no SparkContext and no scheduler pools."""

    class ConnectLike:
        @property
        def sparkContext(self) -> None:  # noqa: N802 (the name PySpark uses)
            raise RuntimeError("[JVM_ATTRIBUTE_NOT_SUPPORTED] sparkContext is not supported")

    ran = []
    with salesopt.lock._renewal_pool(ConnectLike()):  # type: ignore[arg-type]
        ran.append(True)
    assert ran == [True]


def test_lock_kind_follows_the_warehouse_path(settings_for) -> None:
    local = settings_for()
    assert lock_kind(local) == "file"
    assert lock_kind(settings_for(ops={"lock": "delta"})) == "delta"
    remote = local.with_overrides(paths={"warehouse": "abfss://lake@acct.dfs.core.windows.net/wh"})
    assert lock_kind(remote) == "delta"
    volume = local.with_overrides(paths={"warehouse": "/Volumes/main/salesopt/warehouse"})
    assert lock_kind(volume) == "delta"
    assert lock_kind(volume.with_overrides(ops={"lock": "file"})) == "file"
    with pytest.raises(SetupError, match="object store, which has no atomic create-if-absent"):
        lock_kind(remote.with_overrides(ops={"lock": "file"}))


@pytest.mark.spark
@pytest.mark.e2e
@pytest.mark.slow
def test_two_refresh_processes_at_once(spark: SparkSession, base_settings, tmp_path: Path) -> None:
    """The first process is held inside its silver MERGE while the second one starts."""
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    expected = write_tiny_landing(landing)
    release = tmp_path / "release"
    cmd = cli_refresh_cmd(warehouse, landing, ("ingest", "silver"))
    first_out, first_err = tmp_path / "first.out", tmp_path / "first.err"
    first = start(cmd, first_out, first_err, SALESOPT_TEST_FAULT=f"silver_merge:wait={release}")
    try:
        deadline = time.monotonic() + 600
        while not (warehouse / LOCK_NAME).exists() and first.poll() is None:
            assert time.monotonic() < deadline, "the first refresh never took the lock"
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
    assert (
        f"salesopt: another run holds the warehouse lock ({warehouse / LOCK_NAME}): run"
        in second.stderr
    )
    assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr
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
    assert not (warehouse / LOCK_NAME).exists()
    settings = base_settings.with_overrides(
        paths={"warehouse": str(warehouse), "landing": str(landing)}
    )
    gold = refresh(spark, settings, date.fromisoformat(TINY_AS_OF), ("gold",))
    assert gold.stage("gold").summary["published_batches"] == 1


# one process, two sessions: the Delta lock renewed during a long stage, under each scheduler
_SCHEDULERS = """
import json, sys, time
from pathlib import Path
import salesopt.lock
from salesopt.config import load_settings
from salesopt.lock import warehouse_lock
from salesopt.session import get_spark

renewed = []
renew = salesopt.lock._DeltaLock.renew
def timed(self, run_id):
    held = renew(self, run_id)
    renewed.append(time.monotonic())
    return held
salesopt.lock._DeltaLock.renew = timed
for mode in ("FAIR", "FIFO"):
    settings = load_settings(sys.argv[1], environ={}).with_overrides(
        paths={"warehouse": str(Path(sys.argv[2]) / mode)},
        ops={"lock": "delta", "lock_heartbeat_s": 0.5, "lock_stale_s": 3600},
        spark={"master": "local[2]", "conf": {"spark.scheduler.mode": mode}},
    )
    spark = get_spark(settings.spark)
    sc = spark.sparkContext
    with warehouse_lock(settings, "long-run", spark) as held:
        renewed.clear()
        started = time.monotonic()
        sc.parallelize(range(50), 50).foreach(lambda _: time.sleep(1))  # both slots, ~25 s
        ended = time.monotonic()
        held.check()
    # the pool is set for the renewal only: this thread's jobs stay where they were
    sc.setLocalProperty("spark.scheduler.pool", "mine")
    gone = renew(salesopt.lock._DeltaLock(spark, held.lock.wh), "no-such-run")
    print(json.dumps({
        "mode": sc.getConf().get("spark.scheduler.mode"),
        "stage_s": ended - started,
        "renewed_during": [t - started for t in renewed if started < t < ended - 3],
        "pool_after": sc.getLocalProperty("spark.scheduler.pool"),
        "renewed_gone": gone,
    }))
    spark.stop()
"""


@pytest.mark.spark
@pytest.mark.slow
def test_delta_lock_renewal_waits_behind_a_long_stage_only_under_fifo(tmp_path: Path) -> None:
    """The renewals run in the `salesopt_lock` pool (`salesopt/fairscheduler.xml`).

    Under fair scheduling they take the next free task slot while a stage keeps both busy;
    under FIFO (Spark's default) none finishes before the stage has started all its tasks.
    """
    script = tmp_path / "schedulers.py"
    script.write_text(_SCHEDULERS)
    proc = subprocess.run(
        [sys.executable, str(script), str(TEST_CONF), str(tmp_path)],
        env=subprocess_env(), capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    fair, fifo = (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))
    assert (fair["mode"], fifo["mode"]) == ("FAIR", "FIFO")
    assert fair["stage_s"] > 20 and fifo["stage_s"] > 20  # long enough to tell them apart
    assert fair["renewed_during"], fair
    assert fifo["renewed_during"] == [], fifo
    assert fair["pool_after"] == fifo["pool_after"] == "mine"
    assert fair["renewed_gone"] is fifo["renewed_gone"] is False
