"""The library unchanged on Spark Connect.

A local Spark Connect server is started from the installed pyspark (its `SparkConnectServer`
class, with the Delta jars and extension, and no Delta Connect plugin). The same `salesopt`
commands run twice, once with the embedded classic session and once with `SPARK_REMOTE` pointing
at the server: a refresh of the warehouse stages, then the next refresh of every stage (late
re-sent lines MERGEd into silver). Every table is then read with delta-rs (an independent
reader) from both warehouses and compared. Over Connect only, `maintain` with slice expiry
(DELETE, OPTIMIZE, VACUUM) and a rollback (history, RESTORE) follow.

Run with `make test-connect`; CI runs it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyspark
import pytest
from deltalake import DeltaTable

from salesopt.summary import read_summary
from tests.e2e.e2e_helpers import free_port

pytestmark = [pytest.mark.connect, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SPARK_HOME = Path(pyspark.__file__).resolve().parent
START_TIMEOUT_S = 180
RUN_TIMEOUT_S = 1200
GENERATE = ["--customers", "300", "--products", "20", "--days", "240",
            "--start-date", "2024-01-01", "--seed", "11", "--dirty-rate", "0.03"]  # fmt: skip
D2 = date(2024, 1, 1) + timedelta(days=239)  # the last generated day
D1 = D2 - timedelta(days=3)
LEAN = ["--set", "segmentation.k=3", "--set", "segmentation.init_runs=1",
        "--set", "recommend.max_iter=3"]  # fmt: skip
MAINTAIN = ["--set", "maintain.snapshot_retention_days=1",
            "--set", "maintain.snapshot_keep_month_ends=false"]  # fmt: skip
# differ between any two runs that write the same rows: ids, clocks, durations, locations;
# `iterations` of k-means: the same centres and cost may be reached one step apart when the
# change falls under the tolerance in one run's rounding and not the other's
RUN_SPECIFIC = {
    "run_id", "_ingested_at", "recorded_at", "started_at", "ended_at", "seconds",
    "fit_seconds", "model_path", "iterations", "logged_at", "_batch_id",
}  # fmt: skip
# run logs (times, hosts, the session kind): compared by what they count, not row by row
LOGS = {"ops/runs", "ops/ingest_batches"}


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    base.update(
        PYSPARK_PYTHON=sys.executable,
        SALESOPT_PII_KEY="test-only-pii-key",
        **extra,
    )
    return base


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server on 127.0.0.1 with Delta; yields its `sc://` URL."""
    logs = tmp_path_factory.mktemp("connect")
    port = free_port()
    jars = ",".join(str(j) for j in sorted((ROOT / ".jars").glob("*.jar")))
    cmd = [
        str(SPARK_HOME / "bin" / "spark-submit"), "--master", "local[2]",
        "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--driver-memory", "3g", "--jars", jars,
        "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
        "--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", f"spark.checkpoint.dir={logs / 'checkpoints'}",
        "--conf", "spark.ui.enabled=false", "--conf", f"spark.pyspark.python={sys.executable}",
    ]  # fmt: skip
    with (logs / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            env=env(SPARK_HOME=str(SPARK_HOME)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not listening(port):
            assert proc.poll() is None, f"server exited; log in {logs}/server.log"
            assert time.monotonic() < deadline, f"server not up; log in {logs}/server.log"
            time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Side:
    warehouse: Path
    outputs: dict[str, subprocess.CompletedProcess[str]]


# what a Databricks serverless task's process has: the runtime's version and a Connect server
SERVERLESS = {"DATABRICKS_RUNTIME_VERSION": "client.5.1"}


def salesopt(
    args: list[str], remote: str | None, cwd: Path, **platform: str
) -> subprocess.CompletedProcess[str]:
    extra = {"SPARK_REMOTE": remote, **platform} if remote else platform
    done = subprocess.run(
        [str(Path(sys.executable).parent / "salesopt"), *args],
        cwd=cwd,
        env=env(**extra),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, f"salesopt {' '.join(args)}:\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def runs(server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Side]:
    """Generate once (over Connect), then the same commands on each session kind."""
    root = tmp_path_factory.mktemp("connect_runs")
    generated = salesopt(["generate", "--out", str(root / "gen"), *GENERATE], server, root,
                         **SERVERLESS)  # fmt: skip
    sides = {}
    for kind, remote in (("classic", None), ("connect", server)):
        wh = root / kind
        where = ["--warehouse", str(wh), "--landing", str(root / "gen" / "landing")]
        commands = {
            "first": ["refresh", "--as-of", D1.isoformat(), "--stages", "ingest,silver,gold",
                      "--run-id", "first", *where],
            "second": ["refresh", "--as-of", D2.isoformat(), "--run-id", "second", *where, *LEAN],
        }  # fmt: skip
        outputs = {"first": salesopt(commands["first"], remote, root)}
        # the next refresh over Connect as a Databricks serverless task would run it: the
        # platform's session (closed before exit: ALS models are fitted), tracking where told
        platform = {
            **SERVERLESS,
            "MLFLOW_TRACKING_URI": f"sqlite:///{wh / '_mlflow' / 'mlflow.db'}",
        }
        outputs["second"] = salesopt(
            commands["second"], remote, root, **(platform if remote else {})
        )
        sides[kind] = Side(wh, outputs)
    sides["connect"].outputs["generate"] = generated
    return sides


def tables(warehouse: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(warehouse)) for p in warehouse.glob("*/*/_delta_log"))


def comparable(warehouse: Path, table: str) -> pd.DataFrame:
    """The table's rows without run-specific columns, nested values as text, sorted."""
    frame = DeltaTable(str(warehouse / table)).to_pandas()
    frame = frame.drop(columns=[c for c in frame.columns if c in RUN_SPECIFIC])
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, (list, dict, np.ndarray))).any():
            frame[column] = frame[column].map(repr)
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    order = [c for c in frame.columns if c not in floats] + floats
    return frame.sort_values(order).reset_index(drop=True) if order else frame


def test_commands_ran_over_spark_connect(runs: dict[str, Side]) -> None:
    for kind, side in runs.items():
        for name, done in side.outputs.items():
            remote = "Spark Connect session (sc://" in done.stderr
            # as on Databricks: the platform's session (here a Connect one), result keys set
            platform = "the Databricks session (runtime client.5.1)" in done.stderr
            expected = {"first": (True, False), "second": (False, True), "generate": (False, True)}
            assert (remote, platform) == (expected[name] if kind == "connect" else (False, False))
            assert "Traceback" not in done.stderr, (kind, name)
            assert "tracking of stage" not in done.stderr, (kind, name)  # "... failed"
        second = read_summary(side.outputs["second"].stdout)
        assert second["status"] == "succeeded"
        assert [s["stage"] for s in second["stages"]] == [
            "ingest", "silver", "gold", "segment", "recommend", "forecast", "optimize",
            "strategy", "monitor",
        ]  # fmt: skip
        reconciliation = second["stages"][1]["summary"]["reconciliation"]
        assert reconciliation["balanced"] is True


def test_late_resent_lines_were_merged_on_both_session_kinds(runs: dict[str, Side]) -> None:
    for kind, side in runs.items():
        silver = DeltaTable(str(side.warehouse / "silver/order_lines")).history()
        assert "MERGE" in {h["operation"] for h in silver}, kind


def test_connect_writes_the_same_tables_as_the_classic_session(runs: dict[str, Side]) -> None:
    classic, connect = runs["classic"].warehouse, runs["connect"].warehouse
    assert tables(connect) == tables(classic)
    assert len(tables(classic)) >= 30
    for table in tables(classic):
        a, b = comparable(classic, table), comparable(connect, table)
        if table in LOGS:
            assert len(a) == len(b), table
            continue
        assert list(a.columns) == list(b.columns), table
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, obj=table)
    for table in ("gold/forecasts", "gold/recommendations", "gold/customer_segments",
                  "gold/segment_response", "silver/order_lines"):  # fmt: skip
        assert len(comparable(connect, table)) > 0, table


def test_maintain_over_spark_connect(runs: dict[str, Side], server: str) -> None:
    """Slice expiry (DELETE), OPTIMIZE and VACUUM as SQL over Connect."""
    side = runs["connect"]
    where = ["--warehouse", str(side.warehouse)]
    done = salesopt(["maintain", *where, *MAINTAIN], server, side.warehouse.parent)
    assert "Spark Connect session (sc://" in done.stderr
    report = read_summary(done.stdout)
    # every table with data files (an empty table has nothing to compact or expire)
    assert set(report["tables"]) <= set(tables(side.warehouse))
    assert {"silver/order_lines", "gold/forecasts", "ops/runs"} <= set(report["tables"])
    expired = report["tables"]["gold/customer_features"]
    assert (expired["slices_deleted"], expired["rows_deleted"] > 0) == (1, True)
    features = DeltaTable(str(side.warehouse / "gold/customer_features"))
    assert "DELETE" in {h["operation"] for h in features.history()}
    assert set(features.to_pandas()["as_of"].astype(str)) == {D2.isoformat()}  # D1 expired


def test_rollback_over_spark_connect(runs: dict[str, Side], server: str) -> None:
    """History and RESTORE through SQL: the second run undone (maintain's changes too)."""
    side = runs["connect"]
    lines = DeltaTable(str(side.warehouse / "silver/order_lines"))
    after_first = [
        h["version"] for h in lines.history() if "first" in str(h.get("userMetadata") or "")
    ]
    expected = len(DeltaTable(str(lines.table_uri), version=max(after_first)).to_pandas())
    done = salesopt(
        ["rollback", "--run-id", "second", "--force", "--warehouse", str(side.warehouse)],
        server,
        side.warehouse.parent,
    )
    assert "Spark Connect session (sc://" in done.stderr
    assert len(DeltaTable(str(lines.table_uri)).to_pandas()) == expected
    assert "RESTORE" in {h["operation"] for h in DeltaTable(str(lines.table_uri)).history()}
    slices = DeltaTable(str(side.warehouse / "gold/customer_features")).to_pandas()
    assert set(slices["as_of"].astype(str)) == {D1.isoformat()}
