"""`bench.glance`: the At a glance table of docs/benchmarks.md is the one the result files give,
and a newer result file changes it (value, status and source)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench.glance import RESULTS, Row, load, main, render, rows


def _newest_refresh() -> dict[str, Any]:
    """The newest refresh result file's content, as `bench.common.save` wrote it."""
    return json.loads(sorted(RESULTS.glob("refresh-2*.json"))[-1].read_text())


def _bench(template: dict[str, Any], stamp: str, folder: Path, **results: Any) -> None:
    """A refresh result file made from `template` with some results replaced."""
    doc = json.loads(json.dumps(template))
    doc["results"].update(results)
    (folder / f"refresh-{stamp}.json").write_text(json.dumps(doc))


def _starting(shown: dict[str, Row], prefix: str) -> Row:
    """The one row whose first cell starts with `prefix` (some rows end in changing sizes)."""
    (row,) = [v for k, v in shown.items() if k.startswith(prefix)]
    return row


def _incremental_status(folder: Path) -> str:
    return _starting(rows(render(load(folder))), "incremental refresh, +").status


def test_the_doc_holds_the_table_the_result_files_give() -> None:
    assert main(["--check"]) == 0


def test_a_newer_refresh_result_replaces_the_older_one(tmp_path: Path) -> None:
    for result in RESULTS.glob("*.json"):
        shutil.copy(result, tmp_path)
    before = rows(render(load(tmp_path)))
    _bench(
        _newest_refresh(), "29991231T000000Z", tmp_path,
        incremental_runs_seconds=[60.0, 64.0, 70.0], incremental_seconds=64.0,
        full_refresh_seconds=673.7, incremental_over_full=0.095, salesopt_over_duckdb=2.9,
    )  # fmt: skip
    after = rows(render(load(tmp_path)))

    incremental = _starting(after, "incremental refresh, +")
    assert incremental.measured == "0.0950 (64.0 s, median of 3; runs 60.0, 64.0, 70.0 s)"
    assert incremental.status.startswith("met (")
    assert incremental.files() == ["refresh-29991231T000000Z.json"]
    assert _starting(before, "full refresh against DuckDB").status.startswith("**blocked**")
    duckdb = _starting(after, "full refresh against DuckDB")
    assert duckdb.measured.startswith("2.9x") and duckdb.status == "met"
    # rows of other benches keep their files
    als = "ALS against popularity, precision@10 on the holdout"
    assert after[als] == before[als]


def test_the_count_is_of_benches_of_the_newest_ones_method_on_unrounded_ratios(
    tmp_path: Path,
) -> None:
    for result in RESULTS.glob("*.json"):
        if not result.name.startswith("refresh-2"):
            shutil.copy(result, tmp_path)
    template = _newest_refresh()
    template["results"].pop("incremental_method", None)
    later = {"full_refresh_seconds": 500.0}
    # before the next-day method (no run compiled afresh): 0.09 is not counted
    earlier = {k: v for k, v in template["results"].items() if "compiled_afresh" not in k}
    _bench({**template, "results": earlier}, "29990101T000000Z", tmp_path,
           incremental_seconds=45.0, incremental_over_full=0.09, **later)  # fmt: skip
    # the method without its name; 50.02 / 500 = 0.10004 is stored as 0.1 but does not meet it
    _bench(template, "29990102T000000Z", tmp_path,
           incremental_seconds=50.02, incremental_over_full=0.1, **later)  # fmt: skip
    assert _incremental_status(tmp_path) == "**not met** (0 of 1 benches of this method met it)"

    # the method by name, met; then another method by name, which counts alone
    _bench(template, "29990103T000000Z", tmp_path, incremental_method="next day in one session",
           incremental_seconds=49.5, incremental_over_full=0.099, **later)  # fmt: skip
    assert _incremental_status(tmp_path) == "met (1 of 2 benches of this method met it)"
    _bench(template, "29990104T000000Z", tmp_path, incremental_method="a week in one session",
           incremental_seconds=52.0, incremental_over_full=0.104, **later)  # fmt: skip
    assert _incremental_status(tmp_path) == "**not met** (0 of 1 benches of this method met it)"


def _saved(folder: Path, kind: str, stamp: str, **changes: Any) -> None:
    """A file as `bench.common.save` writes it, holding the newest older (flat) file of `kind`
    that the glance shows, with some numbers changed."""
    shown = rows(render(load()))
    cited = [v.files() for v in shown.values()]
    source = next(f for f in cited if any(n.startswith(f"{kind}-") for n in f))[-1]
    flat = json.loads((RESULTS / source).read_text())
    assert "measured_at" not in flat  # written before the benches used `save`
    doc = {"bench": kind, "measured_at": stamp, "command": "-", "machine": {},
           "results": {**flat, **changes}}  # fmt: skip
    (folder / f"{kind}-{stamp}.json").write_text(json.dumps(doc))


def test_saved_model_bench_files_replace_the_older_flat_ones(tmp_path: Path) -> None:
    for result in RESULTS.glob("*.json"):
        shutil.copy(result, tmp_path)
    before = rows(render(load(tmp_path)))
    _saved(tmp_path, "elasticity", "29991231T000000Z", median_rel_error=0.25)
    _saved(tmp_path, "segment", "29991231T000001Z", ari_vs_planted=0.5)
    als = "ALS against popularity, precision@10 on the holdout"
    newest_recommend = before[als].files()[-1]
    metrics = json.loads((RESULTS / newest_recommend).read_text())["metrics"]
    metrics["als/all"] = metrics["popular/all"]  # a lift of 1.00x
    _saved(tmp_path, "recommend", "29991231T000002Z", metrics=metrics)
    after = rows(render(load(tmp_path)))

    elasticity = "elasticity recovery, median relative error"
    assert after[elasticity].measured.startswith("25.0 % (")
    assert after[elasticity].status == "**not met**"
    assert after[elasticity].files() == ["elasticity-29991231T000000Z.json"]
    segmentation = "segmentation, adjusted Rand index against planted segments"
    assert "0.5000" in after[segmentation].measured and after[segmentation].status == "**not met**"
    assert "segment-29991231T000001Z.json" in after[segmentation].files()
    assert (
        after[als].measured.endswith("1.00x (20,000 x 1,000)")
        and after[als].status == "**not met**"
    )
    assert after[als].files()[-1] == "recommend-29991231T000002Z.json"
