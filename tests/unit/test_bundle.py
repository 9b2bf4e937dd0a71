"""The Databricks Asset Bundle's structure, and that every wheel task runs the `salesopt` command
line with arguments it accepts, on a job cluster or on serverless compute."""

from __future__ import annotations

import importlib
import itertools
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

from salesopt import cli
from salesopt.pipeline import STAGES, parse_stages

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {
    "dev": "job_cluster",
    "prod": "job_cluster",
    "dev_serverless": "serverless",
    "prod_serverless": "serverless",
}
TASK_KEYS = ["ingest", "features", "segment", "recommend", "forecast", "optimize"]
JOB_REFERENCES = {
    "{{job.parameters.as_of}}": "yesterday",
    "{{job.trigger.time.iso_date}}": "2025-07-01",
    "{{job.run_id}}": "42",
}
DEPLOYMENT = {  # what `databricks bundle` fills in for a person deploying
    "${workspace.current_user.short_name}": "someone",
    "${workspace.current_user.userName}": "someone@example.com",
    "${var.service_principal}": "1b2c3d4e-aaaa-bbbb-cccc-123456789abc",
}


def _merge(base: Any, over: Any) -> Any:
    """`over` merged into `base` as `databricks bundle` merges a target's override and the
    included files: mappings key by key, a job's tasks by task_key, other lists appended."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(over, list):
        if all(isinstance(x, dict) and "task_key" in x for x in base + over):
            by_key = {t["task_key"]: t for t in base}
            for task in over:
                by_key[task["task_key"]] = _merge(by_key.get(task["task_key"], {}), task)
            return list(by_key.values())
        return base + over
    return over


def load_bundle(target: str | None = None) -> dict[str, Any]:
    """databricks.yml with the files it includes merged in; with `target`, that target's
    resources merged over the top-level ones."""
    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text())
    for pattern in bundle["include"]:
        files = sorted(ROOT.glob(pattern))
        assert files, f"include pattern {pattern} matches no file"
        for path in files:
            bundle = _merge(bundle, yaml.safe_load(path.read_text()))
    if target is not None:
        override = bundle["targets"][target].get("resources", {})
        bundle["resources"] = _merge(bundle["resources"], override)
    return bundle


def wheel_tasks(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    tasks = [t for job in bundle["resources"]["jobs"].values() for t in job["tasks"]]
    assert tasks, "the bundle defines no task"
    return tasks


def variables(bundle: dict[str, Any], target: str) -> dict[str, str]:
    """`${var.NAME}` -> the target's value (else the default), deployment references filled."""
    values = {
        name: str(bundle["targets"][target]["variables"].get(name, spec.get("default", "")))
        for name, spec in bundle["variables"].items()
    }
    refs = {**DEPLOYMENT, "${bundle.target}": target}
    for name, value in values.items():
        for ref, filled in refs.items():
            value = value.replace(ref, filled)
        values[name] = value
    return {f"${{var.{name}}}": value for name, value in values.items()}


def argv_of(task: dict[str, Any], values: dict[str, str] | None = None) -> list[str]:
    """A task's parameters as the job passes them: job references and `values` filled in."""
    argv = []
    for arg in task["python_wheel_task"]["parameters"]:
        for ref, value in {**JOB_REFERENCES, **(values or {})}.items():
            arg = arg.replace(ref, value)
        argv.append(arg)
    return argv


def console_scripts() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project["scripts"])


def test_targets_and_variables() -> None:
    bundle = load_bundle()
    assert bundle["bundle"]["name"] == "salesopt"
    modes = {name: t["mode"] for name, t in bundle["targets"].items()}
    assert modes == {
        "dev": "development",
        "dev_serverless": "development",
        "prod": "production",
        "prod_serverless": "production",
    }
    assert [n for n, t in bundle["targets"].items() if t.get("default")] == ["dev"]
    assert {"catalog", "schema", "warehouse", "landing"} <= set(bundle["variables"])
    for target in bundle["targets"].values():
        assert {"catalog", "schema", "warehouse", "landing"} <= set(target["variables"])


@pytest.mark.parametrize("name", ["prod", "prod_serverless"])
def test_prod_has_one_root_and_runs_as_the_service_principal(name: str) -> None:
    """`bundle validate -t prod` refuses a production target without an explicit root_path
    (for a person deploying) and needs exactly one run_as identity."""
    bundle = load_bundle()
    prod = bundle["targets"][name]
    assert prod["run_as"] == {"service_principal_name": "${var.service_principal}"}
    root = prod["workspace"]["root_path"]
    assert root.startswith("/Workspace/Users/${var.service_principal}/")
    assert "current_user" not in root  # the same folder whoever deploys
    assert root.endswith("/${bundle.target}")  # prod and prod_serverless never share a folder
    assert "service_principal" in bundle["variables"]
    for dev in ("dev", "dev_serverless"):
        assert "run_as" not in bundle["targets"][dev]  # dev runs as the developer


def test_job_is_scheduled_and_never_overlaps() -> None:
    (job,) = load_bundle()["resources"]["jobs"].values()
    assert job["max_concurrent_runs"] == 1
    assert job["schedule"]["quartz_cron_expression"].split()[:3] == ["0", "30", "2"]
    assert job["parameters"] == [{"name": "as_of", "default": "yesterday"}]
    assert "job_clusters" not in job and "environments" not in job  # compute is per target


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_task_has_the_compute_of_its_target(target: str) -> None:
    """A job cluster and the wheel as a task library, or a serverless environment holding the
    wheel: never both, never neither (the Jobs API refuses `libraries` on serverless tasks)."""
    (job,) = load_bundle(target)["resources"]["jobs"].values()
    tasks = job["tasks"]
    assert [t["task_key"] for t in tasks] == TASK_KEYS
    if TARGETS[target] == "job_cluster":
        assert job["name"] == "salesopt-refresh"
        assert "environments" not in job
        (cluster,) = job["job_clusters"]
        assert cluster["new_cluster"]["spark_version"] == "${var.spark_version}"
        env_vars = cluster["new_cluster"]["spark_env_vars"]
        assert env_vars == {"SALESOPT_PII_KEY": "{{secrets/salesopt/pii_key}}"}
        for task in tasks:
            assert task["job_cluster_key"] == cluster["job_cluster_key"]
            assert task["libraries"] == [{"whl": "../dist/*.whl"}]
            assert "environment_key" not in task
    else:
        assert job["name"] == "salesopt-refresh-serverless"  # never mistaken for the other
        assert "job_clusters" not in job
        (env,) = job["environments"]
        assert env["spec"] == {"environment_version": "5", "dependencies": ["../dist/*.whl"]}
        for task in tasks:
            assert task["environment_key"] == env["environment_key"]
            assert "libraries" not in task and "job_cluster_key" not in task


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_settings_reach_every_task_as_flags(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Serverless tasks get no environment variables: paths, catalog, the MLflow experiment and
    the PII key's secret are command-line flags, the same on every compute."""
    monkeypatch.chdir(tmp_path)  # no conf/local.yaml
    for name in [n for n in os.environ if n.startswith("SALESOPT_")]:
        monkeypatch.delenv(name)
    bundle = load_bundle(target)
    values = variables(bundle, target)
    for task in wheel_tasks(bundle):
        argv = argv_of(task, values)
        assert not [a for a in argv if "${" in a or "{{" in a], argv  # every reference filled
        settings = cli.settings_from(cli.parse_args(argv))
        assert settings.paths.warehouse == values["${var.warehouse}"]
        assert settings.paths.landing == values["${var.landing}"]
        assert settings.catalog.catalog == (values["${var.catalog}"] or None)  # empty: none
        assert settings.catalog.schema_prefix == (values["${var.schema}"] or None)
        assert settings.tracking.experiment == values["${var.experiment}"]
        assert settings.tracking.experiment.startswith("/Users/")  # Databricks needs a path
        assert settings.clean.pii_key_secret == "salesopt/pii_key"
    if target.startswith("dev"):
        assert values["${var.schema}"] == "salesopt_someone"
        assert values["${var.catalog}"] == ""
    else:
        assert values["${var.catalog}"] == "main"
        assert "1b2c3d4e-aaaa" in values["${var.experiment}"]  # the principal's folder


def test_every_task_runs_the_one_cli_entry_point() -> None:
    scripts = console_scripts()
    assert scripts == {"salesopt": "salesopt.cli:entry"}
    module, _, attr = scripts["salesopt"].partition(":")
    assert getattr(importlib.import_module(module), attr) is cli.entry
    for task in wheel_tasks(load_bundle()):
        wheel = task["python_wheel_task"]
        assert (wheel["package_name"], wheel["entry_point"]) == ("salesopt", "salesopt")


def test_tasks_refresh_every_stage_once_in_pipeline_order_and_parse() -> None:
    tasks = wheel_tasks(load_bundle())
    for before, task in itertools.pairwise(tasks):
        assert task["depends_on"] == [{"task_key": before["task_key"]}]
    covered: list[str] = []
    for task in tasks:
        argv = argv_of(task)
        args = cli.parse_args(argv)  # the default parameter: the day before the trigger
        assert (args.command, str(args.as_of), args.run_id) == ("refresh", "2025-06-30", "42")
        backfill = [a.replace("yesterday", "2025-05-31") for a in argv]
        assert cli.parse_args(backfill).as_of == date(2025, 5, 31)  # a date given wins
        assert args.stages, f"task {task['task_key']} would refresh every stage"
        parse_stages(args.stages)  # every stage of the task exists
        covered += parse_stages(args.stages)
    assert covered == list(STAGES)
    assert [t["task_key"] for t in tasks] == TASK_KEYS
