"""A real standalone Spark cluster on 127.0.0.1: one master and two workers started from the
installed pyspark, `jobs/main.py refresh ...` spark-submitted to it with the built package
(`make dist`) and the Delta jars, and the tables it wrote checked. The cluster is stopped even on
failure.

Run with `make test-cluster` (builds dist/ first); CI runs it after `make test`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyspark
import pytest
from pyspark.sql import SparkSession

from salesopt.io.tables import Warehouse
from salesopt.summary import read_summary
from tests.e2e.e2e_helpers import TINY_AS_OF, TINY_DAILY_UNITS, free_port, write_tiny_landing

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
SPARK_HOME = Path(pyspark.__file__).resolve().parent
START_TIMEOUT_S = 180
SUBMIT_TIMEOUT_S = 1200


@dataclass(frozen=True)
class Cluster:
    master_url: str
    web_url: str
    logs: Path


def cluster_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_DAEMON_MEMORY="512m",
        PYSPARK_PYTHON=sys.executable,  # executors get pandas, pyarrow, ... from the venv
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SALESOPT_PII_KEY=os.environ.get("SALESOPT_PII_KEY", "test-only-pii-key"),
    )
    env.update(extra)
    return env


def alive_workers(web_url: str) -> int:
    try:
        with urllib.request.urlopen(f"{web_url}/json/", timeout=5) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except OSError:
        return 0


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stops each daemon's own process group (the worker's executors are in it)."""
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in reversed(procs):
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not (DIST / "salesopt.zip").exists() or not list(DIST.glob("salesopt-*.whl")):
        pytest.fail("dist/ has no package: run `make dist` first (`make test-cluster` does)")
    logs = tmp_path_factory.mktemp("cluster")
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port, web = free_port(), free_port()
    master_url, web_url = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web}"
    daemons = {
        "master": ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                   "--port", str(port), "--webui-port", str(web)],
    }  # fmt: skip
    for i in (1, 2):
        daemons[f"worker{i}"] = [
            "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
            "--port", str(free_port()), "--webui-port", str(free_port()), "--cores", "1",
            "--memory", "1g", "--work-dir", str(logs / f"work{i}"),
        ]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in daemons.items():
            with (logs / f"{name}.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [spark_class, *args],
                        env=cluster_env(),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + START_TIMEOUT_S
        while alive_workers(web_url) < 2:
            dead = [n for n, p in zip(daemons, procs, strict=True) if p.poll() is not None]
            assert not dead, f"{dead} exited; logs in {logs}"
            assert time.monotonic() < deadline, (
                f"cluster not up after {START_TIMEOUT_S}s; logs in {logs}"
            )
            time.sleep(1)
        yield Cluster(master_url, web_url, logs)
    finally:
        stop(procs)


def spark_submit(
    cluster: Cluster, script: Path, args: list[str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """spark-submit in client mode with the package from dist/ and the Delta jars, from `cwd`."""
    jars = ",".join(str(j) for j in sorted((ROOT / ".jars").glob("*.jar")))
    cmd = [
        str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster.master_url,
        "--deploy-mode", "client", "--jars", jars, "--py-files", str(DIST / "salesopt.zip"),
        "--driver-memory", "1g", "--executor-memory", "768m", "--executor-cores", "1",
        "--total-executor-cores", "2", "--conf", "spark.sql.shuffle.partitions=4",
        "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.host=127.0.0.1",
        "--conf", f"spark.pyspark.python={sys.executable}",
        str(script), *args,
    ]  # fmt: skip
    done = subprocess.run(
        cmd, cwd=cwd, env=cluster_env(), capture_output=True, text=True, timeout=SUBMIT_TIMEOUT_S
    )
    (cluster.logs / f"submit-{script.stem}.log").write_text(done.stdout + done.stderr)
    return done


def test_refresh_job_on_the_standalone_cluster(
    cluster: Cluster, spark: SparkSession, tmp_path: Path
) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    expected = write_tiny_landing(landing)
    args = ["refresh", "--as-of", TINY_AS_OF, "--warehouse", str(warehouse),
            "--landing", str(landing), "--stages", "ingest,silver,gold",
            "--run-id", "cluster-run"]  # fmt: skip
    done = spark_submit(cluster, DIST / "jobs" / "main.py", args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-5000:]
    # spark-submit merges the Python driver's stderr (salesopt's log) into its stdout
    driver_log = done.stdout.splitlines()
    loaded = [line for line in driver_log if "salesopt 0.1.0 loaded from" in line]
    assert loaded and f"{DIST / 'salesopt.zip'}" in loaded[0], loaded  # not from the checkout
    launcher = f"Spark session from the launcher (master={cluster.master_url})"
    assert any(launcher in line for line in driver_log)
    summary = read_summary(done.stdout)
    assert (summary["status"], summary["run_id"]) == ("succeeded", "cluster-run")
    assert [s["stage"] for s in summary["stages"]] == ["ingest", "silver", "gold"]
    reconciliation = summary["stages"][1]["summary"]["reconciliation"]
    assert {k: reconciliation[k] for k in expected} == expected
    assert reconciliation["balanced"] is True

    wh = Warehouse(str(warehouse))
    assert wh.read(spark, "bronze", "orders_raw").count() == expected["raw_lines_read"]
    assert wh.read(spark, "silver", "order_lines").count() == expected["accepted"]
    assert wh.read(spark, "quarantine", "orders_rejected").count() == expected["quarantined"]
    daily = wh.read(spark, "gold", "sales_daily").collect()
    assert {(r["product_id"], str(r["date"])): r["units"] for r in daily} == TINY_DAILY_UNITS
    features = wh.read_as_of(spark, "gold", "customer_features", date.fromisoformat(TINY_AS_OF))
    assert features.count() == 1  # the one customer
    # the snapshot is complete for a plain reader: `WHERE as_of = D` on the table itself
    plain = wh.read(spark, "gold", "customer_features").where(f"as_of = DATE'{TINY_AS_OF}'")
    assert plain.count() == 1


PROBE = """
import sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
where = spark.sparkContext.parallelize(range(4), 4).map(
    lambda _: __import__("salesopt").__file__
).distinct().collect()
print("\\n".join(where))
spark.stop()
"""


def test_executors_import_salesopt_from_the_shipped_package(
    cluster: Cluster, tmp_path: Path
) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    done = spark_submit(cluster, probe, [], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-5000:]
    locations = done.stdout.split()
    assert locations
    assert all("salesopt.zip" in p and str(ROOT / "salesopt") not in p for p in locations), (
        locations
    )
