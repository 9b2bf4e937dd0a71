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
