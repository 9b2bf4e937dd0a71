"""`bench.glance`: the At a glance table of docs/benchmarks.md is the one the result files give,
and a newer result file changes it (value, status and source)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.glance import RESULTS, load, main, render


def _rows(table: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split(" | ") for line in table.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


def test_the_doc_holds_the_table_the_result_files_give() -> None:
    assert main(["--check"]) == 0


def test_a_newer_refresh_result_replaces_the_older_one(tmp_path: Path) -> None:
    for result in RESULTS.glob("*.json"):
        shutil.copy(result, tmp_path)
    before = _rows(render(load(tmp_path)))
    newest = max(tmp_path.glob("refresh-2*.json"), key=lambda p: p.stem)
    doc = json.loads(newest.read_text())
    latest = dict(doc["results"])
    doc["results"].update(
        incremental_runs_seconds=[60.0, 64.0, 70.0], incremental_seconds=64.0,
        incremental_over_full=0.095, salesopt_over_duckdb=2.9,
    )  # fmt: skip
    (tmp_path / "refresh-29991231T000000Z.json").write_text(json.dumps(doc))
    after = _rows(render(load(tmp_path)))

    incremental = next(k for k in after if k.startswith("incremental refresh, +"))
    runs = ", ".join(f"{r:.1f}" for r in latest["incremental_runs_seconds"])
    # the benches of the next-day method (they time a run compiled afresh too)
    method = [json.loads(p.read_text())["results"] for p in RESULTS.glob("refresh-2*.json")]
    method = [r for r in method if "incremental_compiled_afresh_seconds" in r]
    met = sum(r["incremental_over_full"] <= 0.10 for r in method)
    assert before[incremental][1:3] == [
        f"{latest['incremental_over_full']:.3f} ({latest['incremental_seconds']:.1f} s, "
        f"median of 3; runs {runs} s)",
        ("met" if latest["incremental_over_full"] <= 0.10 else "**not met**")
        + f" ({met} of {len(method)} benches of this method met it)",
    ]
    assert after[incremental][1:] == [
        "0.095 (64.0 s, median of 3; runs 60.0, 64.0, 70.0 s)",
        f"met ({met + 1} of {len(method) + 1} benches of this method met it)",
        "`refresh-29991231T000000Z.json`",
    ]  # fmt: skip
    duckdb = next(k for k in after if k.startswith("full refresh against DuckDB"))
    assert before[duckdb][2].startswith("**blocked**")
    assert after[duckdb][1].startswith("2.9x") and after[duckdb][2] == "met"
    # rows of other benches keep their files
    als = "ALS against popularity, precision@10 on the holdout"
    assert after[als] == before[als]
