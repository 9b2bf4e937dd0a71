"""The bench plumbing without Spark: `python -m bench` itself, the printed table read back, and
`bench.bench_refresh`'s ratios, statuses and arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import BENCHES
from bench.__main__ import main as bench_main
from bench.bench_refresh import empty_warehouse, figures, incremental_results, parse_args
from bench.common import parse_table, report, table


def _result(full: float, floor: float, runs: list[float]) -> dict[str, object]:
    """A refresh result as `bench_refresh.main` builds it (the fields `figures` reads)."""
    return {
        "full_refresh_seconds": full,
        "full_stage_seconds": {"ingest": 1.0, "silver": 2.5, "gold": 3.25},
        "spark_floor_seconds": floor,
        "full_over_floor": round(full / floor, 2),
        "duckdb_seconds": None,
        **incremental_results(full, runs),
    }


def test_the_list_names_every_bench_and_an_unknown_name_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(BENCHES)
    assert listed == ["refresh", "forecast", "forecast-real", "forecast-intermittent",
                      "recommend", "segment", "elasticity", "elasticity-real"]  # fmt: skip
    assert bench_main(["nope"]) == 2
    assert "unknown bench 'nope'" in capsys.readouterr().err
    assert bench_main([]) == 2


def test_the_next_day_ratio_is_the_median_runs_over_the_full_refresh() -> None:
    out = incremental_results(600.0, [90.0, 66.0, 72.0])
    assert out["incremental_runs_seconds"] == [90.0, 66.0, 72.0]
    assert out["incremental_seconds"] == 72.0
    assert out["incremental_over_full"] == 0.12
    assert incremental_results(100.0, [10.0, 14.0])["incremental_seconds"] == 12.0
    with pytest.raises(ValueError, match="no incremental run"):
        incremental_results(100.0, [])


def test_the_table_says_met_or_missed_against_each_target() -> None:
    rows = {r[0]: r for r in figures(_result(400.0, 50.0, [90.0, 110.0, 100.0]))}
    assert rows["full refresh / floor"] == ("full refresh / floor", "8.00", "<= 4", "missed")
    assert rows["next-day / full"] == ("next-day / full", "0.2500", "<= 0.25", "met")
    assert rows["next-day refresh (s)"][1] == "100.00 (median of 90.00, 110.00, 100.00)"
    assert rows["full refresh stages (s)"][1] == "ingest 1.00 / silver 2.50 / gold 3.25"
    assert "DuckDB (s), reference" not in rows  # --skip-duckdb


def test_the_printed_table_reads_back_row_by_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = figures(_result(120.0, 40.0, [10.0]))
    assert parse_table("noise\n" + table("a title", rows) + "\nmore noise") == {
        r[0]: r for r in rows
    }
    report("refresh", "a title", rows, {"x": 1}, None)
    printed = capsys.readouterr().out
    assert parse_table(printed)["full refresh / floor"][1:] == ("3.00", "<= 4", "met")
    assert not list(tmp_path.iterdir())  # no --json: no file
    report("refresh", "a title", rows, {"x": 1}, tmp_path / "out" / "r.json")
    doc = json.loads((tmp_path / "out" / "r.json").read_text())
    assert (doc["bench"], doc["results"]) == ("refresh", {"x": 1})


def test_arguments_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args([]).incremental_runs == 3
    assert parse_args(["--json", "r.json"]).json == Path("r.json")
    with pytest.raises(SystemExit):
        parse_args(["--incremental-runs", "0"])
    assert "at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--reuse-landing"])
    assert "needs --workdir" in capsys.readouterr().err


def test_the_full_refresh_starts_from_an_empty_warehouse_whatever_the_workdir_holds(
    tmp_path: Path,
) -> None:
    log = tmp_path / "warehouse" / "silver" / "order_lines" / "_delta_log"
    log.mkdir(parents=True)
    (log / "00000000000000000000.json").write_text("{}")
    assert empty_warehouse(tmp_path / "warehouse") is True
    assert not (tmp_path / "warehouse").exists()
    assert empty_warehouse(tmp_path / "warehouse") is False
