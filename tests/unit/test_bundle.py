"""The Databricks Asset Bundle's structure, and that every wheel task runs the `salesopt` command
line with arguments it accepts."""

from __future__ import annotations

import importlib
import itertools
from datetime import date
from pathlib import Path
from typing import Any

import tomllib
import yaml

from salesopt import cli
from salesopt.pipeline import STAGES, parse_stages

ROOT = Path(__file__).resolve().parents[2]


def load_bundle() -> dict[str, Any]:
    """databricks.yml with the files it includes merged under `resources`."""
    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text())
    resources: dict[str, dict] = {}
    for pattern in bundle["include"]:
        files = sorted(ROOT.glob(pattern))
        assert files, f"include pattern {pattern} matches no file"
        for path in files:
            for kind, items in yaml.safe_load(path.read_text())["resources"].items():
                resources.setdefault(kind, {}).update(items)
    bundle["resources"] = resources
    return bundle


def wheel_tasks(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    tasks = [t for job in bundle["resources"]["jobs"].values() for t in job["tasks"]]
    assert tasks, "the bundle defines no task"
    return tasks


def console_scripts() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project["scripts"])


def test_targets_and_variables() -> None:
    bundle = load_bundle()
    assert bundle["bundle"]["name"] == "salesopt"
    assert set(bundle["targets"]) == {"dev", "prod"}
    assert bundle["targets"]["dev"]["mode"] == "development"
    assert bundle["targets"]["prod"]["mode"] == "production"
    assert {"catalog", "schema", "warehouse", "landing"} <= set(bundle["variables"])
    for target in bundle["targets"].values():
        assert {"catalog", "schema", "warehouse", "landing"} <= set(target["variables"])


def test_prod_has_one_root_and_runs_as_the_service_principal() -> None:
    """`bundle validate -t prod` refuses a production target without an explicit root_path
    (for a person deploying) and needs exactly one run_as identity."""
    bundle = load_bundle()
    prod = bundle["targets"]["prod"]
    assert prod["run_as"] == {"service_principal_name": "${var.service_principal}"}
    root = prod["workspace"]["root_path"]
    assert root.startswith("/Workspace/Users/${var.service_principal}/")
    assert "current_user" not in root  # the same folder whoever deploys
    assert "service_principal" in bundle["variables"]
    assert "run_as" not in bundle["targets"]["dev"]  # dev runs as the developer


def test_job_is_scheduled_and_never_overlaps() -> None:
    (job,) = load_bundle()["resources"]["jobs"].values()
    assert job["max_concurrent_runs"] == 1
    assert job["schedule"]["quartz_cron_expression"].split()[:3] == ["0", "30", "2"]
    assert job["parameters"] == [{"name": "as_of", "default": "yesterday"}]
    env = job["job_clusters"][0]["new_cluster"]["spark_env_vars"]
    assert env["SALESOPT_CATALOG__CATALOG"] == "${var.catalog}"
    assert env["SALESOPT_CATALOG__SCHEMA_PREFIX"] == "${var.schema}"


def test_every_task_runs_the_one_cli_entry_point() -> None:
    scripts = console_scripts()
    assert scripts == {"salesopt": "salesopt.cli:entry"}
    module, _, attr = scripts["salesopt"].partition(":")
    assert getattr(importlib.import_module(module), attr) is cli.entry
    for task in wheel_tasks(load_bundle()):
        wheel = task["python_wheel_task"]
        assert (wheel["package_name"], wheel["entry_point"]) == ("salesopt", "salesopt")
        assert task["libraries"] == [{"whl": "../dist/*.whl"}]


def test_tasks_refresh_every_stage_once_in_pipeline_order_and_parse() -> None:
    tasks = wheel_tasks(load_bundle())
    for before, task in itertools.pairwise(tasks):
        assert task["depends_on"] == [{"task_key": before["task_key"]}]
    covered: list[str] = []
    for task in tasks:
        argv = [
            a.replace("{{job.parameters.as_of}}", "yesterday")
            .replace("{{job.trigger.time.iso_date}}", "2025-07-01")
            .replace("{{job.run_id}}", "42")
            for a in task["python_wheel_task"]["parameters"]
        ]
        args = cli.parse_args(argv)  # the default parameter: the day before the trigger
        assert (args.command, str(args.as_of), args.run_id) == ("refresh", "2025-06-30", "42")
        backfill = [a.replace("yesterday", "2025-05-31") for a in argv]
        assert cli.parse_args(backfill).as_of == date(2025, 5, 31)  # a date given wins
        assert args.stages, f"task {task['task_key']} would refresh every stage"
        parse_stages(args.stages)  # every stage of the task exists
        covered += parse_stages(args.stages)
    assert covered == list(STAGES)
    assert [t["task_key"] for t in tasks] == [
        "ingest", "features", "segment", "recommend", "forecast", "optimize"
    ]  # fmt: skip
