"""`bench.bench_refresh` and its two probes end to end, each as its own process on a tiny
generation: the result file's lines agree with the landing files, its ratios with its seconds,
and the probes run on the workdir the bench keeps. (The benches' numbers at scale are in
docs/benchmarks.md; this checks the code that makes them.)"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import run_bench

from bench.common import LOCAL_CONF, NEXT_DAY_IN_SESSION
from salesopt.config import load_settings
from salesopt.datagen import last_day
from salesopt.ingest import delivery_date

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAYS = 60
SIZE = ["--customers", "300", "--products", "30", "--days", str(DAYS)]
HOLD_DAYS = 5  # the bench's default


def _last_day() -> date:
    """The last generated day of this size: the bench's and the probes' `as_of`."""
    return last_day(load_settings(LOCAL_CONF, overrides={"generate.days": DAYS}).generate)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    base = tmp_path_factory.mktemp("bench")
    work, results = base / "work", base / "results"
    run_bench(
        "bench.bench_refresh", *SIZE, "--workdir", str(work), "--keep-full",
        "--incremental-runs", "2", results=results,
    )  # fmt: skip
    (result,) = results.glob("refresh-*.json")  # one file, and not in bench/results
    yield work, json.loads(result.read_text())["results"]


def _landing_lines(work: Path) -> dict[date, int]:
    """Lines per delivery date of the generated order files (docs/source-contract.md)."""
    lines: dict[date, int] = {}
    for f in (work / "landing" / "orders").glob("*/*.txt"):
        day = delivery_date(str(f))
        assert day is not None
        lines[day] = lines.get(day, 0) + len(f.read_text().splitlines())
    return lines


def test_the_bench_reads_the_files_it_says_and_reports_its_own_seconds(
    bench: tuple[Path, dict[str, Any]],
) -> None:
    work, r = bench
    end = _last_day()
    by_day = _landing_lines(work)
    # the full refresh reads the files delivered up to end - hold - 1; the timed run the last
    # `hold` days' (the day between is the untimed previous day)
    assert r["generated_landing_lines"] == sum(by_day.values())
    full_as_of, previous_day = end - timedelta(HOLD_DAYS + 1), end - timedelta(HOLD_DAYS)
    assert r["full_refresh_lines"] == sum(n for d, n in by_day.items() if d <= full_as_of)
    assert r["incremental_lines"] == sum(
        n for d, n in by_day.items() if previous_day < d <= end
    )  # fmt: skip
    assert r["incremental_lines"] > 0

    assert r["incremental_method"] == NEXT_DAY_IN_SESSION
    runs = r["incremental_runs_seconds"]
    assert len(runs) == 2 and len(r["incremental_stage_seconds"]) == 2
    assert r["incremental_seconds"] == pytest.approx(statistics.median(runs), abs=0.05)
    assert r["incremental_over_full"] == round(
        r["incremental_seconds"] / r["full_refresh_seconds"], 3
    )  # fmt: skip
    for stages in [r["full_stage_seconds"], *r["incremental_stage_seconds"]]:
        assert list(stages) == ["ingest", "silver", "gold"]
    assert r["incremental_compiled_afresh_seconds"] > 0
    # the new process's stages ran inside its wall time
    assert 0 < r["incremental_fresh_process_stage_seconds"] < r["incremental_fresh_process_seconds"]
    # /proc shows the driver here: its CPU, of which the compiler's is a part
    for cpu in [r["full_refresh_jvm_cpu_seconds"], *r["incremental_jvm_cpu_seconds"]]:
        assert 0 < cpu["jit"] < cpu["process"]
    assert r["salesopt_over_duckdb"] == round(r["full_refresh_seconds"] / r["duckdb_seconds"], 2)
    # the state the probes start from is kept, the incremental runs' copies are not
    assert (work / "warehouse_full" / "silver" / "order_lines" / "_delta_log").is_dir()
    assert not list(work.glob("warehouse_incremental_*"))


def test_the_probes_run_on_the_workdir_the_bench_keeps(
    bench: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    work, _ = bench
    end = _last_day()
    out = run_bench(
        "bench.probe_incremental", "--workdir", str(work), *SIZE, "--runs", "1",
        "--jobs-top", "3", results=tmp_path,
    )  # fmt: skip
    run = re.search(r"^run 1: incremental [\d.]+ s, (\d+) Spark jobs \((.*)\)$", out, re.M)
    assert run is not None, out[-2000:]
    assert int(run.group(1)) > 0
    assert [s.split()[0] for s in run.group(2).split(", ")] == ["ingest", "silver", "gold"]
    assert "salesopt.snapshots:write_all:" in out and "job group:" in out

    out = run_bench(
        "bench.probe_next_day", "--workdir", str(work), *SIZE, "--day-runs", "2",
        results=tmp_path,
    )  # fmt: skip
    days = re.findall(r"^(first run|next day \d) \((\S+)\): [\d.]+ s, (\d+) classes", out, re.M)
    assert [(label, day) for label, day, _ in days] == [
        ("first run", str(end - timedelta(2))),
        ("next day 1", str(end - timedelta(1))),
        ("next day 2", str(end)),
    ]
    assert all(int(classes) > 0 for _, _, classes in days)
    assert not list(tmp_path.glob("*.json"))  # probes keep no result file
