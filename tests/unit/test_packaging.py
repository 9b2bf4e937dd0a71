"""The wheel's dependencies: Spark and Delta only as an extra, ranges that the pinned set meets."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.unit.test_bundle import load_bundle

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PROVIDED = {"pyspark", "delta-spark"}
# Databricks Runtime -> the Spark line it runs (release notes of each runtime).
RUNTIME_SPARK_LINE = {"17.3": "4.0", "18": "4.1"}
# serverless environment versions: 4 ships Databricks Connect 17 (Spark 4.0), 5 Connect 18 (4.1)
ENVIRONMENT_SPARK_LINE = {"4": "4.0", "5": "4.1"}


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[canonicalize_name(name)] = version
    return pins


def test_spark_and_delta_are_an_extra_not_a_requirement() -> None:
    required = {canonicalize_name(Requirement(r).name) for r in project()["dependencies"]}
    assert not required & RUNTIME_PROVIDED
    extra = {
        canonicalize_name(Requirement(r).name) for r in project()["optional-dependencies"]["spark"]
    }
    assert extra == RUNTIME_PROVIDED


def test_installed_metadata_requires_spark_only_with_the_extra() -> None:
    for text in importlib.metadata.requires("salesopt") or []:
        req = Requirement(text)
        if canonicalize_name(req.name) in RUNTIME_PROVIDED:
            assert req.marker is not None and "extra" in str(req.marker), text
            # pyspark and delta-spark come with the `spark` extra (or `connect`, the client)
            assert any(req.marker.evaluate({"extra": e}) for e in ("spark", "connect")), text
            assert not req.marker.evaluate({"extra": ""}), text


def test_every_declared_dependency_is_pinned_and_the_pin_meets_its_range() -> None:
    pins = constraints()
    declared = list(project()["dependencies"])
    for group in project()["optional-dependencies"].values():
        declared += group
    for text in declared:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside the declared {req.specifier}"
        )


def test_the_environment_runs_the_pinned_set() -> None:
    pins = constraints()
    for name in ("pyspark", "delta-spark", "pandas", "numpy", "pyarrow", "statsmodels"):
        assert importlib.metadata.version(name) == pins[name], name


def test_bundle_runtime_runs_the_tested_spark_line() -> None:
    bundle = load_bundle("prod")
    (job,) = bundle["resources"]["jobs"].values()
    for cluster in job["job_clusters"]:
        assert cluster["new_cluster"]["spark_version"] == "${var.spark_version}"
    runtime = bundle["variables"]["spark_version"]["default"]
    release = runtime.split(".x-", 1)[0]
    assert release in RUNTIME_SPARK_LINE, f"unknown Databricks Runtime {runtime}"
    pinned_line = ".".join(constraints()["pyspark"].split(".")[:2])
    assert RUNTIME_SPARK_LINE[release] == pinned_line
    (serverless,) = load_bundle("prod_serverless")["resources"]["jobs"].values()
    for env in serverless["environments"]:
        assert ENVIRONMENT_SPARK_LINE[env["spec"]["environment_version"]] == pinned_line
    assert Requirement(project()["optional-dependencies"]["spark"][0]).specifier.contains(
        constraints()["pyspark"]
    )
