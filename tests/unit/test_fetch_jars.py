"""The jar fetch's checks that need no Maven: which jars are kept, and the Hadoop match of S3A."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fetch_jars", ROOT / "scripts" / "fetch_jars.py")
assert _spec is not None and _spec.loader is not None
fetch_jars = importlib.util.module_from_spec(_spec)
sys.modules["fetch_jars"] = fetch_jars  # its dataclasses look their module up there
_spec.loader.exec_module(fetch_jars)


def test_artifact_names_drop_the_version() -> None:
    assert fetch_jars._artifact("hadoop-aws-3.4.2.jar") == "hadoop-aws"
    assert fetch_jars._artifact("netty-codec-http2-4.1.115.Final.jar") == "netty-codec-http2"
    assert fetch_jars._version("delta-spark_4.1_2.13-4.3.1.jar") == "4.3.1"


def test_a_hadoop_aws_of_another_hadoop_release_is_refused() -> None:
    fetched = [Path("hadoop-aws-3.4.1.jar"), Path("s3-2.29.52.jar")]
    shipped = [Path("hadoop-client-api-3.4.2.jar"), Path("hadoop-client-runtime-3.4.2.jar")]
    with pytest.raises(SystemExit, match=r"hadoop-aws 3\.4\.1 but pyspark ships Hadoop 3\.4\.2"):
        fetch_jars.check_hadoop_match(fetched, shipped)
    fetch_jars.check_hadoop_match([Path("hadoop-aws-3.4.2.jar")], shipped)  # the same: accepted


def test_the_pinned_hadoop_aws_is_the_hadoop_of_the_installed_pyspark() -> None:
    pom = (ROOT / "jars" / "s3" / "pom.xml").read_text()
    pinned = pom.split("<hadoop.version>")[1].split("<")[0]
    shipped = [
        fetch_jars._version(p.name)
        for p in fetch_jars._pyspark_jars().glob("hadoop-client-api-*.jar")
    ]
    assert shipped == [pinned]
