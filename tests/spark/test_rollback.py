"""`salesopt rollback` on small inline tables: restore, refusal over a later run, force."""

from __future__ import annotations

import json
from datetime import date

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from salesopt import ops
from salesopt.context import StageContext
from salesopt.io.tables import Warehouse
from salesopt.rollback import RollbackRefused, rollback
from salesopt.summary import StageReport

D1, D2 = date(2025, 3, 1), date(2025, 3, 2)


def _run(
    spark: SparkSession, settings, run_id: str, as_of: date, writes, batch: int | None = None
) -> None:
    """A stand-in run: its writes under its commit tag, the batch it ingested (if any) in the
    batch log, and its row in ops/runs."""
    wh = Warehouse.from_settings(settings)
    with ops.tag_commits(spark, run_id):
        writes(wh)
        ctx = StageContext(spark, settings, wh, as_of, run_id)
        if batch is not None:
            ops.log_batch(ctx, ops.Batch(batch, (f"orders/{batch}.json",)), "ingested", 10)
        ops.record_stage(ctx, StageReport("gold", "succeeded", 0.1), ops.utc_now())


def _slice(spark: SparkSession, as_of: date, value: int):
    return spark.createDataFrame(
        [(as_of, "P1", value), (as_of, "P2", value + 1)], "as_of date, product_id string, units int"
    )


def _state(spark: SparkSession, wh: Warehouse) -> dict:
    """Every table's rows, sorted: equal states are equal tables."""
    tables = [("gold", "sales"), ("gold", "created_later")]
    return {
        t: sorted(tuple(r) for r in wh.read(spark, *t).collect()) if wh.exists(spark, *t) else None
        for t in tables
    }


def _batches(spark: SparkSession, settings) -> dict:
    """Each batch's latest state and files in the batch log."""
    ctx = StageContext(spark, settings, Warehouse.from_settings(settings), D1, "-")
    return {s["seq"]: (s["status"], list(s["files"])) for s in ops.latest_batch_states(ctx)}


def test_rollback_restores_refuses_over_a_later_run_and_forces(
    spark: SparkSession, settings_for
) -> None:
    settings = settings_for()
    wh = Warehouse.from_settings(settings)

    def first(w: Warehouse) -> None:
        w.write_slice(_slice(spark, D1, 5), "gold", "sales", D1)

    _run(spark, settings, "r1", D1, first, batch=1)
    after_r1 = _state(spark, wh)

    def second(w: Warehouse) -> None:
        w.write_slice(_slice(spark, D2, 7), "gold", "sales", D2)
        w.write_slice(_slice(spark, D1, 9), "gold", "sales", D1)  # a changed D1 slice
        w.overwrite(_slice(spark, D2, 1), "gold", "created_later")

    _run(spark, settings, "r2", D2, second, batch=2)
    DeltaTable.forPath(spark, wh.path("gold", "sales")).optimize().executeCompaction()
    assert _state(spark, wh) != after_r1

    done = rollback(spark, settings, as_of=D2)  # the latest run of D2: r2
    assert done["rolled_back"] == "r2"
    assert done["tables"]["gold/created_later"] == {
        "to_version": None, "action": "emptied (created by the run)"
    }  # fmt: skip
    assert set(done["tables"]) == {"gold/sales", "gold/created_later"}
    # the batch log is a log: r2's batch number is retired, never reused, its file unread
    assert _batches(spark, settings) == {1: ("ingested", ["orders/1.json"]), 2: ("rolled_back", [])}
    state = _state(spark, wh)
    assert state == {**after_r1, ("gold", "created_later"): []}
    runs = wh.read(spark, *ops.RUNS_TABLE).where("stage = 'rollback'").collect()
    assert [(r["rollback_of"], r["status"]) for r in runs] == [("r2", "succeeded")]
    assert runs[0]["run_id"] == done["rollback_run_id"]
    history = DeltaTable.forPath(spark, wh.path("gold", "sales")).history(1).first()
    assert ops.read_tag(history["userMetadata"]) == {
        "run_id": done["rollback_run_id"], "rollback_of": "r2"
    }  # fmt: skip

    again = rollback(spark, settings, run_id="r2")  # already undone: nothing to do
    assert again["tables"] == {}
    assert sorted(again["already_restored"]) == sorted(done["tables"])
    assert _state(spark, wh) == state

    def third(w: Warehouse) -> None:
        w.write_slice(_slice(spark, D2, 3), "gold", "sales", D2)

    _run(spark, settings, "r3", D2, third)
    # only r3 is named: the rolled-back r2 and the rollback's own commits are not in effect
    with pytest.raises(RollbackRefused, match=r"gold/sales by run r3\); roll those"):
        rollback(spark, settings, run_id="r1")
    assert wh.read(spark, "gold", "sales").count() == 4  # refused: nothing restored

    forced = rollback(spark, settings, run_id="r1", force=True)
    assert forced["also_undone"] == ["r3"]
    assert forced["tables"]["gold/sales"] == {
        "to_version": None, "action": "emptied (created by the run)"
    }  # fmt: skip
    assert wh.read(spark, "gold", "sales").count() == 0
    undone = wh.read(spark, *ops.RUNS_TABLE).where("stage = 'rollback'")
    assert {r["rollback_of"] for r in undone.collect()} == {"r1", "r2", "r3"}  # each marked


@pytest.mark.slow
def test_rollback_newest_first_and_a_rerun_under_the_same_id(
    spark: SparkSession, settings_for
) -> None:
    settings = settings_for()
    wh = Warehouse.from_settings(settings)

    def write(value: int):
        return lambda w: w.write_slice(_slice(spark, D1, value), "gold", "sales", D1)

    _run(spark, settings, "r1", D1, write(1))
    _run(spark, settings, "r2", D1, write(2))
    _run(spark, settings, "r3", D1, write(3))
    rollback(spark, settings, run_id="r3")  # newest first: nothing blocks
    with pytest.raises(RollbackRefused, match=r"gold/sales by run r2\); roll those"):
        rollback(spark, settings, run_id="r1")
    rollback(spark, settings, run_id="r2")
    assert {r["units"] for r in wh.read(spark, "gold", "sales").collect()} == {1, 2}  # r1's rows
    _run(spark, settings, "r2", D1, write(5))  # rerun under the same id (a retried task)
    again = rollback(spark, settings, run_id="r2")
    # versions: 0-2 the runs, 3 and 4 the two rollbacks, 5 the rerun: back to 4
    assert again["tables"] == {"gold/sales": {"to_version": 4, "action": "restored"}}
    assert {r["units"] for r in wh.read(spark, "gold", "sales").collect()} == {1, 2}
    assert rollback(spark, settings, run_id="r1")["tables"]["gold/sales"]["to_version"] is None


def test_rollback_names_a_run_that_does_not_exist(spark: SparkSession, settings_for) -> None:
    settings = settings_for()
    _run(
        spark,
        settings,
        "r1",
        D1,
        lambda w: w.write_slice(_slice(spark, D1, 5), "gold", "sales", D1),
    )
    with pytest.raises(Exception, match=r"no run nope in ops/runs .*SELECT DISTINCT run_id"):
        rollback(spark, settings, run_id="nope")
    with pytest.raises(Exception, match=r"no run for as_of 2025-03-02"):
        rollback(spark, settings, as_of=D2)


def test_the_command_refuses_in_one_line(
    spark: SparkSession, settings_for, capsys: pytest.CaptureFixture[str]
) -> None:
    from salesopt.cli import main

    settings = settings_for()
    _run(
        spark,
        settings,
        "r1",
        D1,
        lambda w: w.write_slice(_slice(spark, D1, 5), "gold", "sales", D1),
    )
    _run(
        spark,
        settings,
        "r2",
        D1,
        lambda w: w.write_slice(_slice(spark, D1, 6), "gold", "sales", D1),
    )
    argv = ["rollback", "--conf", "conf/test.yaml", "--warehouse", settings.paths.warehouse]
    assert main([*argv, "--run-id", "r1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "salesopt: cannot roll back run r1: later writes changed its tables (gold/sales by run "
        "r2); roll those runs back first (newest first), or pass --force to restore anyway "
        "(their changes to these tables are undone too)"
    ]
    assert main([*argv, "--as-of", D1.isoformat()]) == 0  # the latest run of D1: r2
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rolled_back"] == "r2" and summary["tables"]["gold/sales"]["to_version"] == 0


def test_a_rolled_back_batch_is_read_again_under_a_new_number(
    spark: SparkSession, settings_for, tmp_path
) -> None:
    from salesopt.pipeline import refresh

    settings = settings_for()
    orders = tmp_path / "landing" / "orders"
    orders.mkdir(parents=True)
    (orders / "a.json").write_text('{"n": 1}\n{"n": 2}\n{"n": 3}\n')
    wh = Warehouse.from_settings(settings)
    refresh(spark, settings, D1, ["ingest"], run_id="r1")
    (orders / "b.json").write_text('{"n": 4}\n{"n": 5}\n')
    refresh(spark, settings, D2, ["ingest"], run_id="r2")
    assert wh.read(spark, "bronze", "orders_raw").count() == 5
    rollback(spark, settings, run_id="r2")
    assert wh.read(spark, "bronze", "orders_raw").count() == 3
    # Delta still holds txnVersion 2 for bronze's idempotent append: batch 2 is retired and
    # b.json is read again as batch 3, never skipped
    refresh(spark, settings, D2, ["ingest"], run_id="r3")
    assert wh.read(spark, "bronze", "orders_raw").count() == 5
    states = _batches(spark, settings)
    assert states[2] == ("rolled_back", [])
    assert states[3][0] == "ingested" and [f.rsplit("/", 1)[-1] for f in states[3][1]] == ["b.json"]


@pytest.mark.slow
def test_a_failed_restore_puts_back_the_tables_already_restored(
    spark: SparkSession, settings_for
) -> None:
    from salesopt.errors import SalesoptError

    settings = settings_for()
    wh = Warehouse.from_settings(settings)

    def write(value: int):
        def writes(w: Warehouse) -> None:
            for name in ("a_first", "b_second"):
                w.overwrite(_slice(spark, D1, value), "gold", name)

        return writes

    _run(spark, settings, "r1", D1, write(1))
    _run(spark, settings, "r2", D1, write(5))
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    spark.conf.set(check, "false")
    try:  # the files of r1's version of b_second are gone: its restore must fail
        DeltaTable.forPath(spark, wh.path("gold", "b_second")).vacuum(0.0)
    finally:
        spark.conf.unset(check)
    with pytest.raises(SalesoptError, match=r"restoring gold/b_second failed .*were put back"):
        rollback(spark, settings, run_id="r2")
    for name in ("a_first", "b_second"):  # all or nothing: r2's rows everywhere
        assert {r["units"] for r in wh.read(spark, "gold", name).collect()} == {5, 6}, name
    rows = wh.read(spark, *ops.RUNS_TABLE).where("stage = 'rollback'").collect()
    assert [(r["status"], r["rollback_of"]) for r in rows] == [("failed", "r2")]
