"""Job argument parsing, job -> stage mapping and the exit codes of the error boundary."""

from __future__ import annotations

import ast
import importlib.util
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

from salesopt import jobs, pipeline
from salesopt.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
JOB_FILES = sorted((ROOT / "jobs").glob("*.py"))


def load_job(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"job_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_job_file_per_job() -> None:
    assert JOB_FILES
    assert {p.stem for p in JOB_FILES} == set(jobs.JOB_STAGES)


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: p.stem)
def test_job_file_is_wiring_with_its_spark_submit_line(path: Path) -> None:
    module = load_job(path)
    assert path.stem == module.JOB
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert "spark-submit " in doc and f"jobs/{path.stem}.py --conf" in doc
    assert "--py-files dist/salesopt.zip" in doc
    args = module.parse_args(["--as-of", "2025-06-30", "--warehouse", "/lake/wh"])
    assert (args.as_of, args.warehouse, args.job) == (date(2025, 6, 30), "/lake/wh", path.stem)
    assert len(path.read_text().splitlines()) < 50


def test_all_flags() -> None:
    args = jobs.parse_args(
        ["--conf", "conf/cluster.yaml", "--as-of", "2025-06-30", "--landing", "s3://b/landing",
         "--set", "spark.shuffle_partitions=64", "--set", "catalog.schema_prefix=so",
         "--run-id", "r1", "--stages", "ingest,silver"],
        "refresh",
    )  # fmt: skip
    assert args.conf == Path("conf/cluster.yaml")
    assert args.set == ["spark.shuffle_partitions=64", "catalog.schema_prefix=so"]
    assert (args.landing, args.run_id, args.stages) == ("s3://b/landing", "r1", "ingest,silver")
    settings = jobs.load_job_settings(args)
    assert settings.spark.shuffle_partitions == 64
    assert settings.catalog.schema_prefix == "so"
    assert settings.paths.landing == "s3://b/landing"


def test_strict_parsing() -> None:
    with pytest.raises(SystemExit) as missing:
        jobs.parse_args([], "ingest")
    assert missing.value.code == 2
    with pytest.raises(SystemExit):
        jobs.parse_args(["--as-of", "2025-06-30", "--stages", "gold"], "ingest")  # refresh only
    with pytest.raises(SystemExit):
        jobs.parse_args(["--as-of", "30/06/2025"], "refresh")
    with pytest.raises(SystemExit):
        jobs.parse_args(["--as-of", "2025-06-30", "--ware", "x"], "refresh")  # no abbreviations
    with pytest.raises(ConfigError, match="unknown job 'nightly'; known jobs: refresh, ingest"):
        jobs.parse_args(["--as-of", "2025-06-30"], "nightly")


def test_stage_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("ingest", "silver", "gold", "segment", "recommend", "forecast", "optimize", "monitor")
    monkeypatch.setattr(pipeline, "STAGES", {n: f"salesopt.{n}" for n in names})
    stages = {
        job: jobs.stages_for(jobs.parse_args(["--as-of", "2025-06-30"], job))
        for job in jobs.JOB_STAGES
    }
    assert stages == {
        "refresh": list(names),
        "ingest": ["ingest", "silver"],
        "features": ["gold"],
        "segment": ["segment"],
        "recommend": ["recommend"],
        "forecast": ["forecast"],
        "optimize": ["optimize", "monitor"],
    }
    subset = jobs.parse_args(["--as-of", "2025-06-30", "--stages", "gold,ingest"], "refresh")
    assert jobs.stages_for(subset) == ["ingest", "gold"]


def test_exit_code_2_for_usage_and_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pipeline, "STAGES", {"ingest": "salesopt.ingest"})
    assert jobs.execute("segment", ["--as-of", "2025-06-30"]) == 2
    assert "unknown stage(s) ['segment']; known stages: ingest" in capsys.readouterr().err
    assert jobs.execute("refresh", ["--as-of", "2025-06-30", "--set", "spark.nope=1"]) == 2
    assert "unknown key 'spark.nope' in command-line flags" in capsys.readouterr().err
    assert jobs.execute("refresh", ["--as-of", "tomorrow"]) == 2
    assert "argument --as-of: not a date YYYY-MM-DD: 'tomorrow'" in capsys.readouterr().err
    assert jobs.main(["nightly", "--as-of", "2025-06-30"]) == 2
    assert "usage: salesopt-job {refresh,ingest" in capsys.readouterr().err


def test_airflow_example_imports_without_airflow_and_builds_valid_job_arguments() -> None:
    path = ROOT / "examples" / "airflow" / "salesopt_dag.py"
    dag_module = load_job(path)
    if importlib.util.find_spec("airflow") is None:
        assert dag_module.dag is None
    assert [j for j in jobs.JOB_STAGES if j != "refresh"] == list(dag_module.JOBS)
    argv = dag_module.spark_submit_argv(
        "forecast", dist="/opt/so/dist", conf="/opt/so/cluster.yaml"
    )
    assert argv[:5] == ["spark-submit", "--packages", dag_module.DELTA_PACKAGE, "--py-files",
                        "/opt/so/dist/salesopt.zip"]  # fmt: skip
    job_file = argv.index("/opt/so/dist/jobs/forecast.py")
    assert argv[job_file + 1 :] == [
        "--conf", "/opt/so/cluster.yaml", "--as-of", "{{ ds }}",
        "--run-id", "{{ ds }}_airflow_forecast",
    ]  # fmt: skip
    rendered = [a.replace("{{ ds }}", "2025-06-30") for a in argv[job_file + 1 :]]
    args = jobs.parse_args(rendered, "forecast")
    assert (args.as_of, args.conf) == (date(2025, 6, 30), Path("/opt/so/cluster.yaml"))
    delta_jar = next(p.name for p in (ROOT / ".jars").glob("delta-spark_*.jar"))
    _, artifact, version = dag_module.DELTA_PACKAGE.split(":")
    assert delta_jar == f"{artifact}-{version}.jar"
