"""The one entry's arguments (`salesopt.cli.parse_args`), the spark-submit driver jobs/main.py,
the exit codes of the error boundary, and the Airflow example built on the same command line."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

from salesopt import cli
from salesopt.pipeline import STAGES, parse_stages

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "jobs" / "main.py"


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"loaded_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that reaches the Spark session fails the test."""

    def refuse(settings: object) -> None:
        raise AssertionError("a Spark session was requested")

    monkeypatch.setattr(cli, "session", refuse)


def test_the_driver_is_the_only_job_file_and_calls_the_cli() -> None:
    assert sorted(p.name for p in (ROOT / "jobs").iterdir() if p.suffix == ".py") == ["main.py"]
    tree = ast.parse(DRIVER.read_text())
    doc = ast.get_docstring(tree) or ""
    assert "spark-submit " in doc and "jobs/main.py refresh --conf" in doc
    assert "--py-files dist/salesopt.zip" in doc and "--stages ingest,silver,gold" in doc
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert [(i.module, [a.name for a in i.names]) for i in imports] == [("salesopt.cli", ["main"])]
    assert "main(sys.argv[1:])" in DRIVER.read_text()


def test_the_driver_reports_a_configuration_error_before_spark() -> None:
    done = subprocess.run(
        [sys.executable, str(DRIVER), "refresh", "--as-of", "2025-06-30", "--stages", "gold,nope"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2
    assert "salesopt: configuration error: unknown stage(s) ['nope']" in done.stderr
    assert "Spark session" not in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_refresh_flags() -> None:
    args = cli.parse_args(
        ["refresh", "--conf", "conf/cluster.yaml", "--as-of", "2025-06-30",
         "--landing", "s3://b/landing", "--set", "spark.shuffle_partitions=64",
         "--set", "catalog.schema_prefix=so", "--run-id", "r1", "--stages", "ingest,silver"]
    )  # fmt: skip
    assert (args.command, args.as_of) == ("refresh", date(2025, 6, 30))
    assert args.conf == Path("conf/cluster.yaml")
    assert args.set == ["spark.shuffle_partitions=64", "catalog.schema_prefix=so"]
    assert (args.landing, args.run_id, args.stages) == ("s3://b/landing", "r1", "ingest,silver")
    settings = cli.settings_from(args)
    assert settings.spark.shuffle_partitions == 64
    assert settings.catalog.schema_prefix == "so"
    assert settings.paths.landing == "s3://b/landing"
    defaults = cli.parse_args(["refresh", "--as-of", "2025-06-30"])
    assert (defaults.stages, defaults.run_id, defaults.conf, defaults.verbose) == (
        None, None, None, False
    )  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no command
        ["refresh"],  # --as-of is required
        ["refresh", "--as-of", "30/06/2025"],
        ["refresh", "--as-of", "2025-06-30", "--ware", "x"],  # no abbreviations
        ["refresh", "--as-of", "2025-06-30", "--stage", "gold"],
        ["maintain", "--stages", "gold"],  # --stages is refresh's
        ["ingest", "--as-of", "2025-06-30"],  # slices are `refresh --stages`, not commands
        ["bench", "refresh"],  # benches run as `python -m bench NAME` from a checkout
    ],
    ids=lambda argv: " ".join(argv) or "empty",
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 2
    assert "usage: salesopt" in capsys.readouterr().err


def test_exit_code_2_for_usage_and_configuration_before_spark(
    no_session: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["refresh", "--as-of", "2025-06-30", "--stages", "ingest,segmnt"]) == 2
    err = capsys.readouterr().err
    assert f"unknown stage(s) ['segmnt']; known stages: {', '.join(STAGES)}" in err
    assert cli.main(["refresh", "--as-of", "2025-06-30", "--set", "spark.nope=1"]) == 2
    assert "unknown key 'spark.nope' in command-line flags" in capsys.readouterr().err
    assert cli.main(["refresh", "--as-of", "tomorrow"]) == 2
    assert "argument --as-of: not a date YYYY-MM-DD: 'tomorrow'" in capsys.readouterr().err
    assert cli.main(["nightly", "--as-of", "2025-06-30"]) == 2
    assert "invalid choice: 'nightly'" in capsys.readouterr().err


def test_run_dispatches_the_parsed_command(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def refresh(spark: object, settings: object, as_of: date, stages: list, run_id: str) -> str:
        calls.append((spark, as_of, stages, run_id))
        return "summary"

    monkeypatch.setattr("salesopt.pipeline.refresh", refresh)
    args = cli.parse_args(["refresh", "--as-of", "2025-06-30", "--stages", "gold,ingest",
                           "--run-id", "r7"])  # fmt: skip
    assert cli.run("spark", cli.settings_from(args), args) == "summary"  # type: ignore[arg-type]
    assert calls == [("spark", date(2025, 6, 30), ["ingest", "gold"], "r7")]


def test_airflow_example_imports_without_airflow_and_builds_valid_cli_arguments() -> None:
    dag_module = load_module(ROOT / "examples" / "airflow" / "salesopt_dag.py")
    if importlib.util.find_spec("airflow") is None:
        assert dag_module.dag is None
    slices = [parse_stages(s) for s in dag_module.SLICES.values()]
    assert [s for stages in slices for s in stages] == list(STAGES)  # each stage once, in order
    argv = dag_module.spark_submit_argv(
        "forecast", dist="/opt/so/dist", conf="/opt/so/cluster.yaml"
    )
    assert argv[:5] == ["spark-submit", "--packages", dag_module.DELTA_PACKAGE, "--py-files",
                        "/opt/so/dist/salesopt.zip"]  # fmt: skip
    driver = argv.index("/opt/so/dist/jobs/main.py")
    assert argv[driver + 1 :] == [
        "refresh", "--conf", "/opt/so/cluster.yaml", "--as-of", "{{ macros.ds_add(ds, -1) }}",
        "--stages", "forecast", "--run-id", "{{ macros.ds_add(ds, -1) }}_airflow_forecast",
    ]  # fmt: skip
    # a run on 2025-07-01 (its logical date on the trigger timetable) refreshes 2025-06-30
    rendered = [a.replace("{{ macros.ds_add(ds, -1) }}", "2025-06-30") for a in argv[driver + 1 :]]
    args = cli.parse_args(rendered)
    assert (args.command, args.as_of, args.conf) == (
        "refresh", date(2025, 6, 30), Path("/opt/so/cluster.yaml")
    )  # fmt: skip
    parse_stages(args.stages)  # the stage exists
    delta_jar = next(p.name for p in (ROOT / ".jars").glob("delta-spark_*.jar"))
    _, artifact, version = dag_module.DELTA_PACKAGE.split(":")
    assert delta_jar == f"{artifact}-{version}.jar"
