"""The forecast, segmentation, recommendation and elasticity benches end to end, each as its own
process on a tiny size: each stores one result file through `bench.common.save` (into the test's
folder, not bench/results), its numbers agree with each other and with the arguments, and the
glance reads the segment file. (The benches' numbers at scale are in docs/benchmarks.md; this
checks the code that makes them.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import run_bench

from bench.common import LOCAL_CONF
from bench.glance import RESULTS, body, load, render, rows
from salesopt.config import load_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODELS = ("als", "blend", "buy_again", "popular")
# months in the two real series the forecast bench reads from the pmdarima wheel
REAL_MONTHS = {"wineind": 176, "airpassengers": 144}


def _result(folder: Path, name: str, *args: str) -> tuple[str, dict[str, Any]]:
    """Runs `bench.bench_<name>` and returns its one result file's name and content."""
    run_bench(f"bench.bench_{name}", *args, results=folder)
    (path,) = folder.glob(f"{name}-*.json")
    doc = json.loads(path.read_text())
    assert doc["bench"] == name
    assert f"-m bench.bench_{name} {' '.join(args)}" in doc["command"]
    assert {"load_avg_1m_at_start", "load_avg_1m_at_end", "cores"} <= set(doc["machine"])
    return path.name, doc


def test_segment_bench(tmp_path: Path) -> None:
    name, doc = _result(tmp_path, "segment", "--customers", "3000", "--no-stability")
    r = body(doc)
    seg = load_settings(LOCAL_CONF).segmentation
    # customers without an order are dropped, as in gold/customer_features
    assert 2_500 < r["customers"] <= 3_000
    assert sum(s["size"] for s in r["segments"]) == r["customers"]
    ks = [p["k"] for p in r["per_k"]]
    assert ks == list(range(seg.k_min, seg.k_max + 1))
    chosen = next(p for p in r["per_k"] if p["k"] == r["chosen_k"])
    assert chosen["silhouette"] == round(r["silhouette"], 4)
    assert r["sweep_s"] == pytest.approx(sum(p["seconds"] for p in r["per_k"]), abs=0.1)
    assert r["stability"] is None
    # the product's target holds at this size too (seeded: the same value every run)
    assert r["ari_vs_planted"] >= 0.8
    # the glance reads it from the folder beside the committed files: one more scale in its row
    for result in RESULTS.glob("*.json"):
        shutil.copy(result, tmp_path)
    row = next(v for k, v in rows(render(load(tmp_path))).items() if k.startswith("segmentation"))
    at = row.files().index(name)
    values, scales = row.measured.removesuffix(" customers").split(" at ")
    aris, customers = values.split(" / "), scales.split(" / ")
    assert (aris[at], customers[at]) == (f"{r['ari_vs_planted']:.4f}", f"{r['customers']:,}")
    assert row.status == "met"


def test_recommend_bench_times_fits_and_scoring(tmp_path: Path) -> None:
    args = ("--customers", "500", "--products", "50", "--interactions", "5000", "--max-iter", "2")
    _, doc = _result(tmp_path, "recommend", *args)
    r = body(doc)
    # duplicate (customer, product) draws add up to one rating
    assert 0 < r["ratings"] <= 5_000 and r["ratings"] <= 500 * 50
    assert r["max_iter"] == 2 and r["fit_2_iter_s"] >= 0
    # per iteration: (fit(2) - fit(1)) / 1, from the unrounded seconds
    assert r["seconds_per_iteration"] == pytest.approx(
        r["fit_2_iter_s"] - r["fit_1_iter_s"], abs=0.15
    )
    assert r["score_all_customers_s"] > 0


def test_recommend_bench_quality_mode(tmp_path: Path) -> None:
    _, doc = _result(tmp_path, "recommend", "--quality", "--customers", "300", "--products", "40")
    r = body(doc)
    assert r["mode"] == "quality" and (r["customers"], r["products"]) == (300, 40)
    assert set(r["metrics"]) == {f"{m}/{c}" for m in MODELS for c in ("all", "new")}
    for metrics in r["metrics"].values():
        assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert 0 < r["test_pairs_evaluated"] <= r["test_pairs"] and r["train_pairs"] > 0
    assert r["cutoff_date"] < r["as_of"]
    # the planted tastes are learnable: ALS beats popularity on the holdout (seeded)
    assert r["metrics"]["als/all"]["precision_at_k"] > r["metrics"]["popular/all"]["precision_at_k"]


def test_elasticity_bench(tmp_path: Path) -> None:
    _, doc = _result(
        tmp_path, "elasticity", "--customers", "500", "--products", "20", "--days", "200"
    )
    r = body(doc)
    assert r["generate"] == {"customers": 500, "products": 20, "days": 200, "seed": 42}
    assert r["traffic_control"] is True
    # every product gets a status; the planted stable-price ones are all classified
    assert r["products"] == 20 == sum(r["status_counts"].values())
    assert r["planted_stable_price_products"] == sum(r["stable_price_products_by_status"].values())
    ok = r["status_counts"].get("ok", 0)
    assert ok > 0
    assert sum(t["products"] for t in r["by_volume_tercile"].values()) == ok
    assert 0.0 <= r["share_within_20pct"] <= 1.0 and r["median_rel_error"] >= 0


def test_forecast_bench(tmp_path: Path) -> None:
    args = ("--series", "24", "--weeks", "80", "--loop-sample", "6", "--folds", "1",
            "--cost-sample", "3")  # fmt: skip
    _, doc = _result(tmp_path, "forecast", *args)
    r = body(doc)
    spark, loop = r["spark"], r["loop"]
    # every series gets a status through the Spark fan-out
    assert sum(spark["status_counts"].values()) == 24 and loop["series"] == 6
    assert spark["series_per_s"] == pytest.approx(24 / spark["seconds"], rel=0.01)
    # efficiency: Spark's series/s over cores x the serial loop's series/s
    efficiency = spark["series_per_s"] / (r["cores"] * loop["series_per_s"])
    assert r["parallel_efficiency"] == pytest.approx(efficiency, abs=0.002)
    # one backtest fold: the chosen models and the seasonal naive have a median MASE
    assert spark["median_mase"] and set(spark["median_mase"]) == set(loop["median_mase"])
    assert (r["cost_weekly_104"]["periods"], r["cost_monthly_120"]["periods"]) == (104, 120)
    assert r["cost_weekly_104"]["series"] == r["cost_monthly_120"]["series"] == 3
    real = r["real_monthly_backtest"]
    assert {name: real[name]["n_obs"] for name in REAL_MONTHS} == REAL_MONTHS
