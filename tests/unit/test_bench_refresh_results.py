"""`bench.bench_refresh`: the incremental runs' report (median run over the full refresh) and the
new-process run (its command, its summary, its report)."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import pytest

from bench.bench_refresh import (
    empty_warehouse,
    fresh_process_command,
    fresh_process_results,
    incremental_results,
    parse_args,
    summary_stage_seconds,
)


def test_the_ratio_is_the_median_runs_with_the_spread_beside_it() -> None:
    out = incremental_results(600.0, [90.0, 66.0, 72.0])
    assert out["incremental_method"] == "next day in one session"
    assert out["incremental_runs_seconds"] == [90.0, 66.0, 72.0]
    assert out["incremental_seconds"] == 72.0
    assert out["incremental_over_full"] == 0.12
    assert out["incremental_over_full_lowest"] == 0.11
    assert out["incremental_over_full_highest"] == 0.15


def test_an_even_number_of_runs_reports_the_middle_two_runs_mean() -> None:
    out = incremental_results(100.0, [10.0, 14.0])
    assert out["incremental_seconds"] == 12.0
    assert out["incremental_over_full"] == 0.12


def test_the_median_keeps_its_milliseconds_so_the_ratio_can_be_recomputed() -> None:
    out = incremental_results(545.763, [54.612, 60.0, 50.0])
    assert out["incremental_seconds"] == 54.612
    assert out["incremental_over_full"] == 0.1  # rounded to 3 places: 0.10007 ...
    assert out["incremental_seconds"] / 545.763 > 0.10  # ... which does not meet <= 0.10


def test_no_run_is_an_error_not_a_ratio() -> None:
    with pytest.raises(ValueError, match="no incremental run"):
        incremental_results(100.0, [])


def test_incremental_runs_default_to_three_and_must_be_positive(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_args([]).incremental_runs == 3
    assert parse_args(["--incremental-runs", "1"]).incremental_runs == 1
    with pytest.raises(SystemExit):
        parse_args(["--incremental-runs", "0"])
    assert "at least 1" in capsys.readouterr().err


def test_fresh_process_runs_default_to_one_and_zero_skips_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_args([]).fresh_process_runs == 1
    assert parse_args(["--fresh-process-runs", "0"]).fresh_process_runs == 0
    with pytest.raises(SystemExit):
        parse_args(["--fresh-process-runs", "-1"])
    assert "0 or more" in capsys.readouterr().err
    assert fresh_process_results(100.0, [], []) == {}


def test_the_new_process_is_this_environments_salesopt_refresh(tmp_path: Path) -> None:
    command = fresh_process_command(
        Path("conf/local.yaml"), tmp_path / "wh", tmp_path / "landing", date(2025, 6, 30),
        ("ingest", "silver", "gold"),
    )  # fmt: skip
    assert command[0] == str(Path(sys.executable).with_name("salesopt"))
    assert command[1] == "refresh"
    flags = dict(zip(command[2::2], command[3::2], strict=True))
    assert flags == {
        "--conf": "conf/local.yaml", "--warehouse": str(tmp_path / "wh"),
        "--landing": str(tmp_path / "landing"), "--as-of": "2025-06-30",
        "--stages": "ingest,silver,gold",
    }  # fmt: skip


def test_stage_seconds_come_from_the_last_stdout_line_and_are_reported_as_medians() -> None:
    summary = {"run_id": "r", "stages": [{"stage": "ingest", "seconds": 4.5},
                                         {"stage": "gold", "seconds": 30.0}]}  # fmt: skip
    stages = summary_stage_seconds("a log line\n" + json.dumps(summary) + "\n")
    assert stages == {"ingest": 4.5, "gold": 30.0}
    out = fresh_process_results(
        500.0, [80.0, 60.0, 70.0], [{"gold": 50.0}, {"gold": 40.0}, {"gold": 45.0}]
    )
    assert out["incremental_fresh_process_seconds"] == 70.0
    assert out["incremental_fresh_process_over_full"] == 0.14
    assert out["incremental_fresh_process_stage_seconds"] == 45.0
    assert out["incremental_fresh_process_stages_over_full"] == 0.09
    assert out["incremental_fresh_process_runs_seconds"] == [80.0, 60.0, 70.0]


@pytest.mark.parametrize(
    ("stdout", "reason"),
    [("  \n", "the command printed nothing"), ('"done"', "the last stdout line is not")],
)
def test_a_process_without_a_summary_stops_the_bench_with_the_reason(
    stdout: str, reason: str
) -> None:
    with pytest.raises(SystemExit, match=f"no run summary: {reason}"):
        summary_stage_seconds(stdout)


def test_the_full_refresh_starts_from_an_empty_warehouse_whatever_the_workdir_holds(
    tmp_path: Path,
) -> None:
    warehouse = tmp_path / "warehouse"
    (warehouse / "silver" / "order_lines" / "_delta_log").mkdir(parents=True)
    (warehouse / "silver" / "order_lines" / "_delta_log" / "00000000000000000000.json").write_text(
        "{}"
    )
    assert empty_warehouse(warehouse) is True
    assert not warehouse.exists()
    assert empty_warehouse(warehouse) is False
