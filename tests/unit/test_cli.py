"""CLI argument parsing and error boundary (no Spark needed)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from salesopt.cli import main, parse_args
from salesopt.errors import ConfigError
from salesopt.pipeline import STAGES, parse_stages


def test_refresh_arguments() -> None:
    args = parse_args(
        [
            "refresh",
            "--conf",
            "conf/local.yaml",
            "--as-of",
            "2025-06-30",
            "--stages",
            "ingest,silver",
        ]
    )
    assert args.as_of == date(2025, 6, 30)
    assert args.conf == Path("conf/local.yaml")
    assert args.stages == "ingest,silver"


def test_refresh_requires_as_of() -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["refresh"])
    assert exit_info.value.code == 2


def test_rollback_names_exactly_one_run() -> None:
    assert parse_args(["rollback", "--run-id", "r1"]).run_id == "r1"
    assert parse_args(["rollback", "--as-of", "2025-06-30", "--force"]).force
    for argv in (["rollback"], ["rollback", "--run-id", "r1", "--as-of", "2025-06-30"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_args(argv)
        assert exit_info.value.code == 2, argv


def test_bad_date_and_mistyped_flag_fail(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["refresh", "--as-of", "30/06/2025"])
    assert "argument --as-of: not a date YYYY-MM-DD: '30/06/2025'\n" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["generate", "--start-date", "2025-13-01"])
    assert (
        "argument --start-date: not a date YYYY-MM-DD: '2025-13-01' (month must be in 1..12)"
        in capsys.readouterr().err
    )
    for other_iso_form in ("20250630", "2025-W26-1", "2025-6-30", " 2025-06-30"):
        with pytest.raises(SystemExit):
            parse_args(["refresh", "--as-of", other_iso_form])
        assert f"not a date YYYY-MM-DD: {other_iso_form!r}\n" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["refresh", "--as-of", "2025-02-29"])
    assert "'2025-02-29' (day is out of range for month)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["refresh", "--as-of", "2025-06-30", "--stage", "gold"])


def test_generate_arguments() -> None:
    args = parse_args(
        ["generate", "--out", "d", "--customers", "10", "--products", "5", "--days", "40",
         "--seed", "3", "--dirty-rate", "0.1"]
    )  # fmt: skip
    assert (args.customers, args.products, args.days, args.seed, args.dirty_rate) == (
        10,
        5,
        40,
        3,
        0.1,
    )


def test_stages_keep_pipeline_order_and_reject_unknown() -> None:
    assert parse_stages("gold,ingest") == ["ingest", "gold"]
    assert parse_stages(None) == list(STAGES)
    with pytest.raises(ConfigError, match="unknown stage"):
        parse_stages("ingest,bogus")


def test_bad_config_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "bad.yaml"
    conf.write_text("spark:\n  shuffle_partitons: 4\n")
    code = main(["refresh", "--conf", str(conf), "--as-of", "2025-01-01"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(
        "salesopt: configuration error: unknown key 'spark.shuffle_partitons'"
    )
    assert not any("Traceback" in line for line in err)


def test_console_script_reports_bad_config_without_traceback(tmp_path: Path) -> None:
    conf = tmp_path / "bad.yaml"
    conf.write_text("forecast:\n  horizon: -1\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "salesopt.cli",
            "refresh",
            "--conf",
            str(conf),
            "--as-of",
            "2025-01-01",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "forecast.horizon" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_landing_paths_have_one_canonical_spelling() -> None:
    from salesopt.ingest import canonical_path

    spellings = ["file:/data/a.json", "file:///data/a.json", "/data/a.json"]
    assert {canonical_path(p) for p in spellings} == {"file:///data/a.json"}
    assert canonical_path("s3://bucket/a.json") == "s3://bucket/a.json"


class SparkStarted(AssertionError):
    pass


def _no_spark(*_args: object) -> None:
    raise SparkStarted("the command started Spark before its checks")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("warehouse_is_a_file", "is a file, not a folder: point paths.warehouse"),
        ("no_orders_folder", "no orders folder at "),
        ("no_pii_key", "PII key missing: set the environment variable SALESOPT_PII_KEY"),
    ],
)
def test_refresh_checks_its_inputs_before_spark_starts(
    case: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import salesopt.cli as cli

    monkeypatch.setattr(cli, "session", _no_spark)
    monkeypatch.setenv("SALESOPT_PII_KEY", "a-key")
    warehouse, landing = tmp_path / "warehouse", tmp_path / "landing"
    (landing / "orders").mkdir(parents=True)
    if case == "warehouse_is_a_file":
        warehouse.write_text("not a folder")
    elif case == "no_orders_folder":
        (landing / "orders").rmdir()
    else:
        monkeypatch.delenv("SALESOPT_PII_KEY")
    argv = ["refresh", "--conf", "conf/test.yaml", "--as-of", "2025-06-30",
            "--warehouse", str(warehouse), "--landing", str(landing)]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("salesopt: ") and expected in err[0], err


def test_an_unexpected_error_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import salesopt.cli as cli

    def fail(*_args: object) -> None:
        raise RuntimeError("disk on fire\n\tat org.apache.Something(Something.java:1)")

    monkeypatch.setattr(cli, "session", lambda settings: None)
    monkeypatch.setattr(cli, "run", fail)
    assert main(["maintain", "--conf", "conf/test.yaml"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "salesopt: unexpected RuntimeError: disk on fire (run with -v for the traceback; please "
        "report it if the input looks right)"
    ]


def test_as_of_yesterday_is_the_day_before_the_trigger_date() -> None:
    from datetime import datetime, timedelta, timezone

    args = parse_args(["refresh", "--as-of", "yesterday", "--trigger-date", "2025-03-01"])
    assert args.as_of == date(2025, 2, 28)
    today = datetime.now(timezone.utc).date()
    assert parse_args(["refresh", "--as-of", "yesterday"]).as_of == today - timedelta(days=1)
    # an explicit date ignores the trigger date (a backfill through the scheduler's parameters)
    explicit = parse_args(["refresh", "--as-of", "2025-01-15", "--trigger-date", "2025-03-01"])
    assert explicit.as_of == date(2025, 1, 15)
    with pytest.raises(SystemExit):
        parse_args(["refresh", "--as-of", "today"])


def test_a_stale_checksum_file_is_named_with_the_fix() -> None:
    from salesopt.pipeline import _failure_message

    def trace(path: str) -> RuntimeError:
        return RuntimeError(
            "An error occurred while calling o83.collectToPython.\n"
            ": org.apache.spark.SparkException: Job aborted due to stage failure: ...\n"
            f"Caused by: org.apache.hadoop.fs.ChecksumException: Checksum error: {path} at 0 "
            "exp: 1195 got: -1120\n"
        )

    landing = _failure_message(trace("file:/l/customers/part-0.csv"), "/w")
    assert landing == (
        "file:/l/customers/part-0.csv no longer matches its checksum file "
        "file:/l/customers/.part-0.csv.crc: the file was edited after it was written; if the "
        "edit is the intended content, delete that .crc file, else restore the file"
    )
    table = _failure_message(trace("file:/w/silver/order_lines/part-0.parquet"), "/w")
    assert table.endswith(
        "a warehouse file was changed after it was written; restore it from a backup or "
        "snapshot, or rebuild the table (rerun from the stage that writes it); do not edit "
        "files under the warehouse"
    )


def test_outside_a_checkout_the_warehouse_must_be_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import salesopt.cli as cli

    monkeypatch.setattr(cli, "session", _no_spark)
    monkeypatch.chdir(tmp_path)  # no conf/local.yaml here
    monkeypatch.delenv("SALESOPT_PATHS__WAREHOUSE", raising=False)
    for argv in (["refresh", "--as-of", "2025-06-30"], ["maintain"],
                 ["report", "--as-of", "2025-06-30", "--out", "r"],
                 ["rollback", "--as-of", "2025-06-30"]):  # fmt: skip
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "pass --warehouse PATH" in err[0], err
        assert str(tmp_path) in err[0]
    assert not (tmp_path / "warehouse").exists()
