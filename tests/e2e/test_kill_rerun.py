"""A refresh killed (SIGKILL) inside the silver stage, right before, between or right after its
writes into silver, then rerun, ends with exactly the tables and the reconciliation of a clean
run over the same landing files (and the same sequence of refreshes)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
from datetime import date
from pathlib import Path

import pytest
from chispa import assert_df_equality
from e2e_helpers import (
    CORE,
    TINY_AS_OF,
    cli_refresh_cmd,
    comparable,
    subprocess_env,
    write_tiny_landing,
)
from pyspark.sql import SparkSession

from salesopt.context import StageContext
from salesopt.ingest import latest_batch_states
from salesopt.io.tables import Warehouse
from salesopt.ops import GUARD_NAME
from salesopt.pipeline import refresh

pytestmark = [pytest.mark.spark, pytest.mark.e2e, pytest.mark.slow]
COMPARED_LAYERS = ("bronze", "silver", "quarantine", "gold")

# Run before `salesopt.cli.main` in the refresh process (`cli_refresh_cmd(patch=...)`): each patch
# replaces a function of the silver stage so that the process SIGKILLs itself (no cleanup, no
# `finally`, as a crashed node or an OOM kill) at one point of the silver writes.
_DIE = """
import os, signal, sys
import salesopt.silver as silver

def die(point):
    sys.stderr.write(f"test patch: killing the process at {point}\\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""
KILL_AT = {
    # before anything of the batch is written into silver/order_lines (quarantine is written)
    "silver_merge": _DIE
    + """
def merge_silver(*args, **kwargs):
    die("silver_merge")
silver._merge_silver = merge_silver
""",
    # between the append of new lines and the MERGE of newer versions (silver's only MERGE)
    "silver_appended": _DIE
    + """
import salesopt.io.delta as delta_sql

def merge(*args, **kwargs):
    die("silver_appended")
delta_sql.merge = merge
""",
    # after the writes into silver, before the batch is logged as cleaned
    "silver_written": _DIE
    + """
written = silver._merge_silver
def merge_silver(*args, **kwargs):
    lost = written(*args, **kwargs)
    die("silver_written")
    return lost
silver._merge_silver = merge_silver
""",
}


def tables_under(root: Path) -> list[tuple[str, str]]:
    found = [
        (layer.name, table.name)
        for layer in sorted(root.iterdir())
        if layer.name in COMPARED_LAYERS
        for table in sorted(layer.iterdir())
        if (table / "_delta_log").is_dir()
    ]
    assert found, f"no Delta tables under {root}"
    return found


@pytest.mark.parametrize("point", ["silver_merge", "silver_written"])
def test_killed_in_silver_then_rerun_equals_clean_run(
    spark: SparkSession,
    base_settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    point: str,
) -> None:
    landing = tmp_path / "landing"
    expected = write_tiny_landing(landing)
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    as_of = date.fromisoformat(TINY_AS_OF)

    def settings(root: Path):
        return base_settings.with_overrides(paths={"warehouse": str(root), "landing": str(landing)})

    proc = subprocess.Popen(
        cli_refresh_cmd(killed_root, landing, patch=KILL_AT[point]),
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    assert f"test patch: killing the process at {point}" in err
    assert out == ""
    # the guard file names the dead run, but its lock died with the process
    assert json.loads((killed_root / GUARD_NAME).read_text())["pid"] == proc.pid

    killed = Warehouse(str(killed_root))
    ctx = StageContext(spark, settings(killed_root), killed, as_of, "inspect")
    assert [s["status"] for s in latest_batch_states(ctx)] == ["ingested"]
    in_silver = (
        killed.read(spark, "silver", "order_lines").count()
        if killed.exists(spark, "silver", "order_lines")
        else 0
    )
    # killed before the write: no line in silver (no table yet); after it: the batch's lines
    # are there, but the batch is still logged `ingested`, so the rerun cleans it again
    assert in_silver == (0 if point == "silver_merge" else expected["accepted"])
    assert killed.read(spark, "quarantine", "orders_rejected").count() == expected["quarantined"]

    with caplog.at_level(logging.WARNING, "salesopt"):
        rerun = refresh(spark, settings(killed_root), as_of, CORE)
    if point == "silver_written":
        assert f"{expected['accepted']} lines of this batch are already in silver" in caplog.text
    clean = refresh(spark, settings(clean_root), as_of, CORE)
    for summary in (rerun, clean):
        reconciliation = summary.stage("silver").summary["reconciliation"]
        assert {k: reconciliation[k] for k in expected} == expected

    tables = tables_under(clean_root)
    assert tables_under(killed_root) == tables
    assert ("silver", "order_lines") in tables and ("gold", "sales_daily") in tables
    clean_wh = Warehouse(str(clean_root))
    assert clean_wh.read(spark, "silver", "order_lines").count() == expected["accepted"]
    for layer, name in tables:
        got = killed.read(spark, layer, name)
        want = clean_wh.read(spark, layer, name)
        assert_df_equality(
            comparable(got), comparable(want), ignore_row_order=True, ignore_nullable=True
        )


def test_killed_between_append_and_merge_then_rerun_equals_clean_runs(
    spark: SparkSession, base_settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The second delivery holds a new line (appended) and a newer version of a line silver holds
    (MERGEd): a kill between the two commits leaves the append in silver; the rerun counts it as
    already applied and still MERGEs the newer version."""
    landing = tmp_path / "landing"
    write_tiny_landing(landing)
    later = landing / "orders" / "batch_date=2025-03-04"
    held = tmp_path / "held" / later.name
    held.parent.mkdir()
    later.rename(held)
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    as_of = date.fromisoformat(TINY_AS_OF)

    def settings(root: Path):
        return base_settings.with_overrides(paths={"warehouse": str(root), "landing": str(landing)})

    for root in (killed_root, clean_root):  # the first delivery, refreshed cleanly in both
        refresh(spark, settings(root), as_of, CORE)
    held.rename(later)
    proc = subprocess.Popen(
        cli_refresh_cmd(killed_root, landing, patch=KILL_AT["silver_appended"]),
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    assert "test patch: killing the process at silver_appended" in err

    killed = Warehouse(str(killed_root))
    silver = {
        (r.order_id, r.line_no): r.quantity
        for r in killed.read(spark, "silver", "order_lines").collect()
    }
    # O4 was appended; O1/1 still has its first version (the MERGE did not run)
    assert silver == {("O1", 1): 2, ("O1", 2): 1, ("O2", 1): 3, ("O4", 1): 5}

    with caplog.at_level(logging.WARNING, "salesopt"):
        rerun = refresh(spark, settings(killed_root), as_of, CORE)
    assert "1 lines of this batch are already in silver" in caplog.text
    clean = refresh(spark, settings(clean_root), as_of, CORE)
    assert (
        rerun.stage("silver").summary["reconciliation"]
        == clean.stage("silver").summary["reconciliation"]
    )
    clean_wh = Warehouse(str(clean_root))
    fixed = {
        (r.order_id, r.line_no): r.quantity
        for r in killed.read(spark, "silver", "order_lines").collect()
    }
    assert fixed == {**silver, ("O1", 1): 4}
    tables = tables_under(clean_root)
    assert tables_under(killed_root) == tables
    for layer, name in tables:
        assert_df_equality(
            comparable(killed.read(spark, layer, name)),
            comparable(clean_wh.read(spark, layer, name)),
            ignore_row_order=True,
            ignore_nullable=True,
        )
