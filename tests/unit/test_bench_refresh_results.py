"""`bench.bench_refresh`: the incremental runs' report (median run over the full refresh)."""

from __future__ import annotations

import pytest

from bench.bench_refresh import incremental_results, parse_args


def test_the_ratio_is_the_median_runs_with_the_spread_beside_it() -> None:
    out = incremental_results(600.0, [90.0, 66.0, 72.0])
    assert out["incremental_runs_seconds"] == [90.0, 66.0, 72.0]
    assert out["incremental_seconds"] == 72.0
    assert out["incremental_over_full"] == 0.12
    assert out["incremental_over_full_lowest"] == 0.11
    assert out["incremental_over_full_highest"] == 0.15


def test_an_even_number_of_runs_reports_the_middle_two_runs_mean() -> None:
    out = incremental_results(100.0, [10.0, 14.0])
    assert out["incremental_seconds"] == 12.0
    assert out["incremental_over_full"] == 0.12


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
