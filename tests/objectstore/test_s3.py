"""The warehouse and the landing on an S3 API: salesopt through Hadoop's S3A connector.

An S3-compatible server (moto, from its own venv `.venv-moto`: tests/objectstore/
requirements-moto.txt) listens on 127.0.0.1; the S3A connector comes from `make s3-jars`
(`.jars-s3`, loaded with `spark.extra_jars_dir`). The tests run the CLI the way a user would
(`salesopt refresh --conf s3.yaml`): the landing files are read from `s3a://`, every table is
written there, and no local guard file is made (on an object store the scheduler serialises runs
and Delta's optimistic concurrency protects each commit).
What this covers and what it does not (AWS itself, several writing drivers): docs/operations.md,
"Object stores".

Run with `make test-s3` (fetches the connector and the server first); CI runs it after the
cluster tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from salesopt.config import load_settings
from salesopt.io.tables import Warehouse
from salesopt.ops import GUARD_NAME
from salesopt.session import get_spark
from salesopt.summary import read_summary
from tests.e2e.e2e_helpers import (
    TINY_AS_OF,
    TINY_DAILY_UNITS,
    comparable,
    free_port,
    subprocess_env,
    write_tiny_landing,
)

pytestmark = pytest.mark.s3

ROOT = Path(__file__).resolve().parents[2]
MOTO = ROOT / ".venv-moto" / "bin" / "moto_server"
S3A_JARS = ROOT / ".jars-s3"
BUCKET = "lake"
START_TIMEOUT_S = 60
RUN_TIMEOUT_S = 900
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class S3:
    endpoint: str
    logs: Path

    def request(self, method: str, key: str = "", body: bytes | None = None) -> bytes:
        """An unsigned path-style request (the local server takes them for public-read data)."""
        url = f"{self.endpoint}/{BUCKET}/{key}" if key else f"{self.endpoint}/{BUCKET}"
        # without a content type urllib sends a form, whose body the server would not store;
        # public-read lets these unsigned requests list the bucket and read back the uploads
        headers = {"Content-Type": "application/octet-stream", "x-amz-acl": "public-read"}
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as response:
            return bytes(response.read())

    def keys(self, prefix: str) -> list[str]:
        """Every object key under `prefix` (follows continuation tokens)."""
        found: list[str] = []
        token = ""
        while True:
            query = f"?list-type=2&prefix={prefix}" + (
                f"&continuation-token={urllib.request.quote(token)}" if token else ""
            )
            root = ElementTree.fromstring(self.request("GET", query))
            found += [el.text or "" for el in root.iter(f"{_S3_NS}Key")]
            token = root.findtext(f"{_S3_NS}NextContinuationToken") or ""
            if not token:
                return found

    def upload(self, folder: Path, prefix: str) -> int:
        files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
        for path in files:
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            self.request("PUT", key, path.read_bytes())
            assert self.request("GET", key) == path.read_bytes(), key
        return len(files)


def _up(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/", timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    if not MOTO.exists():
        pytest.fail(f"{MOTO} missing: run `make test-s3` (it creates .venv-moto)")
    if not list(S3A_JARS.glob("hadoop-aws-*.jar")):
        pytest.fail(f"no S3A connector in {S3A_JARS}: run `make s3-jars` (`make test-s3` does)")
    logs = tmp_path_factory.mktemp("s3")
    port = str(free_port())
    endpoint = f"http://127.0.0.1:{port}"
    with (logs / "moto.log").open("wb") as log:
        server = subprocess.Popen(
            [str(MOTO), "-H", "127.0.0.1", "-p", port],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _up(endpoint):
            assert server.poll() is None, f"the S3 server exited; log in {logs}"
            assert time.monotonic() < deadline, f"S3 server not up after {START_TIMEOUT_S}s"
            time.sleep(0.5)
        store = S3(endpoint, logs)
        store.request("PUT")  # the bucket
        yield store
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def write_conf(path: Path, endpoint: str) -> Path:
    """An environment file as a user on S3 would write one (docs/operations.md)."""
    conf = {
        "paths": {"warehouse": f"s3a://{BUCKET}/warehouse", "landing": f"s3a://{BUCKET}/landing"},
        "spark": {
            "master": "local[2]",
            "driver_memory": "1g",
            "shuffle_partitions": 4,
            "ui_enabled": False,
            "extra_jars_dir": str(S3A_JARS),
            "conf": {
                "spark.hadoop.fs.s3a.endpoint": endpoint,
                "spark.hadoop.fs.s3a.endpoint.region": "us-east-1",
                "spark.hadoop.fs.s3a.path.style.access": "true",
                "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
                "spark.hadoop.fs.s3a.aws.credentials.provider": (
                    "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
                ),
                "spark.hadoop.fs.s3a.access.key": "test-only",
                "spark.hadoop.fs.s3a.secret.key": "test-only",
                # lets the test's maintenance VACUUM with no retention (below: files deleted)
                "spark.databricks.delta.retentionDurationCheck.enabled": "false",
            },
        },
    }
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return path


def salesopt(
    args: list[str], conf: Path, cwd: Path, logs: Path, name: str
) -> subprocess.CompletedProcess[str]:
    """The installed `salesopt` command with the S3 environment file, in its own JVM."""
    exe = Path(sys.executable).parent / "salesopt"
    done = subprocess.run(
        [str(exe), *args[:1], "--conf", str(conf), *args[1:]],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    (logs / f"{name}.log").write_text(done.stdout + done.stderr)
    return done


def table_rows(spark: SparkSession, wh: Warehouse, layer: str, name: str) -> list[tuple]:
    """The table's rows without run bookkeeping, in a stable order."""
    return sorted((tuple(r) for r in comparable(wh.read(spark, layer, name)).collect()), key=repr)


def test_refresh_and_maintain_on_s3(s3: S3, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    expected = write_tiny_landing(landing)
    assert s3.upload(landing, "landing") == 4
    conf = write_conf(tmp_path / "s3.yaml", s3.endpoint)
    refresh = ["refresh", "--as-of", TINY_AS_OF, "--stages", "ingest,silver,gold"]

    first = salesopt(refresh, conf, tmp_path, s3.logs, "refresh-1")
    assert first.returncode == 0, first.stderr[-5000:]
    summary = read_summary(first.stdout)
    assert summary["status"] == "succeeded"
    ingest, silver = summary["stages"][0]["summary"], summary["stages"][1]["summary"]
    assert (ingest["files"], ingest["lines"]) == (2, expected["raw_lines_read"])
    reconciliation = silver["reconciliation"]
    assert {k: reconciliation[k] for k in expected} == expected
    assert reconciliation["balanced"] is True

    settings = load_settings(conf, environ={})
    spark = get_spark(settings.spark)
    try:
        wh = Warehouse(settings.paths.warehouse)
        assert wh.read(spark, "bronze", "orders_raw").count() == expected["raw_lines_read"]
        sources = {
            r[0]
            for r in wh.read(spark, "bronze", "orders_raw")
            .select("_source_file")
            .distinct()
            .collect()
        }
        assert sources and all(s.startswith(f"s3a://{BUCKET}/landing/orders/") for s in sources)
        assert wh.read(spark, "silver", "order_lines").count() == expected["accepted"]
        assert wh.read(spark, "quarantine", "orders_rejected").count() == expected["quarantined"]
        daily = wh.read(spark, "gold", "sales_daily").collect()
        assert {(r["product_id"], str(r["date"])): r["units"] for r in daily} == TINY_DAILY_UNITS
        features = wh.read_as_of(spark, "gold", "customer_features", date.fromisoformat(TINY_AS_OF))
        assert features.count() == 1
        assert f"warehouse/{GUARD_NAME}" not in s3.keys("warehouse/")  # no guard on S3
        assert not (tmp_path / "warehouse").exists()  # nor a local folder by mistake
        assert any(
            k.startswith("warehouse/silver/order_lines/_delta_log/")
            for k in s3.keys("warehouse/silver/")
        )
        tables = ["silver/order_lines", "gold/sales_daily", "gold/sales_weekly"]
        before = {t: table_rows(spark, wh, *t.split("/")) for t in tables}

        # the same as_of again: nothing new to ingest, every table keeps its rows
        again = salesopt(refresh, conf, tmp_path, s3.logs, "refresh-2")
        assert again.returncode == 0, again.stderr[-5000:]
        rerun = read_summary(again.stdout)
        assert rerun["stages"][0]["summary"]["files"] == 0
        assert rerun["stages"][1]["summary"]["reconciliation"]["raw_lines_read"] == 0
        assert wh.read(spark, "bronze", "orders_raw").count() == expected["raw_lines_read"]
        assert {t: table_rows(spark, wh, *t.split("/")) for t in tables} == before
        runs = wh.read(spark, "ops", "runs").where("status = 'succeeded'")
        assert runs.select("run_id").distinct().count() == 2

        # maintenance on S3: OPTIMIZE and VACUUM every table
        no_retention = ["maintain", "--set", "maintain.vacuum_retention_hours=0"]
        maintained = salesopt(no_retention, conf, tmp_path, s3.logs, "maintain")
        assert maintained.returncode == 0, maintained.stderr[-5000:]
        report = read_summary(maintained.stdout)["tables"]
        # every table found by listing s3a:// (no metastore), each compacted and vacuumed
        assert {*tables, "bronze/orders_raw", "quarantine/orders_rejected", "ops/runs",
                "gold/customer_features"} <= set(report)  # fmt: skip
        # ops/runs got one small file per stage record: six appends, compacted into one file
        assert report["ops/runs"]["files_removed"] == 6
        assert report["ops/runs"]["files_added"] == 1
        history = DeltaTable.forPath(spark, wh.path("ops", "runs")).history().collect()
        assert "OPTIMIZE" in {r["operation"] for r in history}
        # VACUUM deleted the six compacted files from the bucket: one data file is left
        data_files = [k for k in s3.keys("warehouse/ops/runs/") if k.endswith(".parquet")]
        assert len(data_files) == 1, data_files
        assert {t: table_rows(spark, wh, *t.split("/")) for t in tables} == before
    finally:
        spark.stop()
