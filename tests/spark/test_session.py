"""Session behaviour: embedded conf, reuse of an active session, no network at start-up."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from salesopt.config import SparkSettings
from salesopt.errors import SetupError
from salesopt.session import (
    default_conf,
    embedded_conf,
    find_delta_jars,
    get_spark,
    one_machine_conf,
)

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parents[2]


def test_active_session_is_reused(spark: SparkSession) -> None:
    again = get_spark(SparkSettings(master="local[1]", shuffle_partitions=99))
    assert again is spark
    assert spark.conf.get("spark.master") == "local[2]"


def test_a_reused_session_gets_the_result_keys_and_keeps_its_sizing(spark: SparkSession) -> None:
    """A notebook's or platform's session: salesopt sets what its results depend on (UTC, ANSI
    off) and leaves sizing (shuffle partitions) to whoever started the session."""
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    spark.conf.set("spark.sql.ansi.enabled", "true")
    try:
        assert get_spark(SparkSettings(shuffle_partitions=99)) is spark
        assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
        assert spark.conf.get("spark.sql.ansi.enabled") == "false"
        assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        spark.conf.set("spark.sql.ansi.enabled", "false")


def test_session_has_delta_utc_and_test_settings(spark: SparkSession) -> None:
    assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert spark.conf.get("spark.ui.enabled") == "false"
    # one-machine fixed costs: Delta file lists in shuffle_partitions tasks, driver-side listing
    assert spark.conf.get("spark.databricks.delta.snapshotPartitions") == "4"
    assert spark.conf.get("spark.sql.sources.parallelPartitionDiscovery.threshold") == "100000"
    assert spark.conf.get("spark.sql.codegen.cache.maxEntries") == "2000"  # a static conf


def test_embedded_conf_uses_local_jars_never_packages() -> None:
    conf = embedded_conf(SparkSettings())
    jars = conf["spark.jars"].split(",")
    assert any(Path(j).name.startswith("delta-spark_4.1_2.13-") for j in jars)
    assert all(Path(j).exists() for j in jars)
    assert "spark.jars.packages" not in conf


def test_extra_jars_dir_adds_its_jars_after_the_delta_ones(tmp_path: Path) -> None:
    (tmp_path / "hadoop-aws-3.4.2.jar").write_bytes(b"")
    (tmp_path / "s3-2.29.52.jar").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a jar")
    jars = embedded_conf(SparkSettings(extra_jars_dir=str(tmp_path)))["spark.jars"].split(",")
    delta = embedded_conf(SparkSettings())["spark.jars"].split(",")
    assert jars == [
        *delta,
        str(tmp_path / "hadoop-aws-3.4.2.jar"),
        str(tmp_path / "s3-2.29.52.jar"),
    ]


def test_an_extra_jars_dir_without_jars_is_a_clear_setup_error(tmp_path: Path) -> None:
    folder = tmp_path / ".jars-s3"
    with pytest.raises(SetupError, match=r"holds no jars \(run `make s3-jars`"):
        embedded_conf(SparkSettings(extra_jars_dir=str(folder)))


def test_one_machine_conf_is_embedded_only() -> None:
    settings = SparkSettings(shuffle_partitions=6)
    assert embedded_conf(settings)["spark.databricks.delta.snapshotPartitions"] == "6"
    # a submitted or cluster session keeps Spark's and Delta's own defaults for these
    assert not set(one_machine_conf(settings)) & set(default_conf(settings))


def test_settings_conf_overrides_any_key() -> None:
    settings = SparkSettings(conf={"spark.sql.shuffle.partitions": "17", "spark.foo": "bar"})
    merged = {**embedded_conf(settings), **settings.conf}
    assert merged["spark.sql.shuffle.partitions"] == "17"
    assert merged["spark.foo"] == "bar"


def test_missing_jars_is_a_clear_setup_error(tmp_path: Path) -> None:
    (tmp_path / "other.jar").write_text("not delta")
    expected = r"run `salesopt setup` once to download them \(or `make setup` in a checkout\)"
    with pytest.raises(SetupError, match=expected):
        find_delta_jars(locations=[str(tmp_path), str(tmp_path / "absent")])


@pytest.mark.slow  # a second JVM: make test-e2e
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_session_starts_and_writes_delta_without_network(tmp_path: Path) -> None:
    """Start Spark in a network namespace with only loopback: any download would fail."""
    script = tmp_path / "probe.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from salesopt.config import SparkSettings
            from salesopt.session import get_spark
            spark = get_spark(SparkSettings(master="local[1]", ui_enabled=False))
            spark.range(5).write.format("delta").save({str(tmp_path / "t")!r})
            print("rows", spark.read.format("delta").load({str(tmp_path / "t")!r}).count())
            # a glob path (how dimension files are read) and a local checkpoint (snapshots)
            spark.range(3).write.csv({str(tmp_path / "csv")!r})
            print("csv", spark.read.csv({str(tmp_path / "csv" / "*.csv")!r}).count())
            print("checkpointed", spark.range(4).localCheckpoint(eager=True).count())
            """
        )
    )
    command = f"ip link set lo up && SPARK_LOCAL_IP=127.0.0.1 {sys.executable} {script}"
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rows 5" in proc.stdout
    assert "csv 3" in proc.stdout and "checkpointed 4" in proc.stdout
    assert "ivy" not in proc.stderr.lower()
    # known-harmless Spark warnings are silenced (salesopt/log4j2.properties): no stack traces
    assert "FileStreamSink" not in proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith("\tat ")]


def test_a_session_keeps_its_checkpoint_folder(spark: SparkSession, tmp_path) -> None:
    from salesopt.session import ensure_checkpoint_dir

    current = spark.sparkContext.getCheckpointDir()
    assert current  # the fixture's session was started with one
    assert ensure_checkpoint_dir(spark, str(tmp_path / "other")) == current


@pytest.mark.slow  # a second JVM: make test-e2e
def test_a_session_without_a_checkpoint_folder_gets_one(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pyspark.sql import SparkSession
        from salesopt.session import ensure_checkpoint_dir
        spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")\\
            .getOrCreate()
        assert spark.sparkContext.getCheckpointDir() is None
        print(ensure_checkpoint_dir(spark, {str(tmp_path / "ckpt")!r}))
        spark.stop()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith(f"file:{tmp_path / 'ckpt'}/")
