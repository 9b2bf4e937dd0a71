"""The forecast, segmentation, recommendation and elasticity benches, each run as
`python -m bench NAME` on a tiny size: the table each prints agrees with its own JSON, with
itself (ratios, statuses) and with the arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import run_bench

from bench.common import LOCAL_CONF, Row, parse_table
from salesopt.config import load_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

METHODS = ("popular", "own_history", "own_history_decay", "buy_again", "als")
# months in the two real series the forecast bench reads from the pmdarima wheel
REAL_MONTHS = {"wineind": 176, "airpassengers": 144}


def _run(folder: Path, name: str, *args: str) -> tuple[dict[str, Row], dict[str, Any]]:
    """Runs the bench with `--json`; returns its printed rows and its JSON's results."""
    out = folder / f"{name}.json"
    rows = parse_table(run_bench(name, *args, "--json", str(out)))
    assert rows
    doc = json.loads(out.read_text())
    assert doc["bench"] == name
    assert doc["command"] == " ".join(["python -m bench", name, *args, "--json", str(out)])
    assert {"load_avg_1m_at_start", "load_avg_1m_at_end", "cores"} <= set(doc["machine"])
    return rows, doc["results"]


def _status(row: Row) -> str:
    """What the row's status must be, from its own value and target."""
    op, limit = row[2].split()
    value = float(row[1].split()[0])
    ok = value >= float(limit) if op == ">=" else value <= float(limit)
    return "met" if ok else "missed"


def test_segment_bench(tmp_path: Path) -> None:
    rows, r = _run(tmp_path, "segment", "--customers", "3000", "--no-stability")
    seg = load_settings(LOCAL_CONF).segmentation
    # customers without an order are dropped, as in gold/customer_features
    assert 2_500 < r["customers"] <= 3_000
    assert sum(s["size"] for s in r["segments"]) == r["customers"]
    ks = [p["k"] for p in r["per_k"]]  # the sweep, widened when its best k is at an edge
    assert set(range(seg.k_min, seg.k_max + 1)) <= set(ks) and ks == list(range(ks[0], ks[-1] + 1))
    assert rows["chosen k"][1] == str(r["chosen_k"])
    chosen = next(p for p in r["per_k"] if p["k"] == r["chosen_k"])
    assert chosen["silhouette"] == round(r["silhouette"], 4)
    sweep = float(rows["sweep (s)"][1].split()[0])
    assert sweep == pytest.approx(sum(p["seconds"] for p in r["per_k"]), abs=0.1)
    assert "ARI between seeds" not in rows
    ari = rows["ARI among modelled customers"]
    assert ari[1] == f"{r['ari_modelled']:.4f}" and ari[2] == ">= 0.85"
    lapsed = rows["planted lapsed labelled lapsed"]
    assert lapsed[1] == f"{r['lapsed_recall']:.4f}" and lapsed[2] == ">= 0.95"
    # the product's targets hold at this size too (seeded: the same value every run)
    assert ari[3] == _status(ari) == "met"
    assert lapsed[3] == _status(lapsed) == "met"


def test_recommend_bench_times_fits_and_scoring(tmp_path: Path) -> None:
    args = ("--customers", "500", "--products", "50", "--interactions", "5000", "--max-iter", "2")
    rows, r = _run(tmp_path, "recommend", *args)
    # duplicate (customer, product) draws add up to one rating
    assert 0 < r["ratings"] <= 5_000 and r["ratings"] <= 500 * 50
    fit_1 = float(rows["fit, 1 iteration (s)"][1])
    fit_2 = float(rows["fit, 2 iterations (s)"][1])
    # per iteration: (fit(2) - fit(1)) / 1, from the unrounded seconds
    assert float(rows["seconds per iteration"][1]) == pytest.approx(fit_2 - fit_1, abs=0.15)
    assert float(rows["top-10 for all customers (s)"][1]) > 0


def test_recommend_bench_quality_mode(tmp_path: Path) -> None:
    rows, r = _run(tmp_path, "recommend", "--quality", "--customers", "300", "--products", "80")
    assert (r["customers"], r["products"]) == (300, 80)
    rep, one = r["repurchase"], r["one_off"]
    # every method is on the holdout, the served one marked; a planted method was chosen
    for steps in (rep, one):
        assert set(METHODS) <= set(steps["holdout_all"])
        assert steps["served"] in steps["holdout_all"]
        assert steps["served"] in steps["validation_all"]
        best = max(steps["validation_all"].values())
        tolerance = load_settings(LOCAL_CONF).recommend.selection_tolerance
        assert steps["validation_all"][steps["served"]] >= best * (1 - tolerance) - 1e-4
    served = rows[f"precision@k, all, {rep['served']} (served)"]
    assert float(served[1]) == rep["holdout_all"][rep["served"]]
    ratio = rows["repurchase: served / best baseline, all"]
    best = max(rep["holdout_all"][b] for b in ("popular", "own_history", "own_history_decay"))
    assert float(ratio[1]) == pytest.approx(float(served[1]) / best, abs=1e-3)
    assert ratio[2] == ">= 1.05" and ratio[3] == _status(ratio)
    share = rows["validation choice / rest of the stage"]
    expected = rep["validation_s"] / (rep["holdout_s"] + rep["production_s"])
    assert float(share[1]) == pytest.approx(expected, abs=0.01) and share[3] == _status(share)
    # nothing is re-bought in the one-off data: the served list does not lose to popularity
    one_off = rows["one-off: served / popularity, all"]
    assert float(one_off[1]) >= 1.0 and one_off[3] == "met"


def test_elasticity_bench(tmp_path: Path) -> None:
    args = ("--customers", "500", "--products", "20", "--days", "320")  # 45 weeks
    rows, r = _run(tmp_path, "elasticity", *args)
    assert r["generate"] == {"customers": 500, "products": 20, "days": 320, "seed": 42}
    # every product gets a status; the planted stable-price ones are all classified
    statuses = dict(s.rsplit(" ", 1) for s in rows["products by status"][1].split(", "))
    assert sum(int(n) for n in statuses.values()) == 20
    assert int(statuses.get("ok", 0)) > 0
    assert r["planted_stable_price_products"] == sum(r["stable_price_products_by_status"].values())
    error = rows["median relative error"]
    assert float(error[1]) >= 0 and error[2] == "<= 0.2" and error[3] == _status(error)
    assert 0.0 <= float(rows["share within 20 %"][1]) <= 1.0


def test_elasticity_real_bench(tmp_path: Path) -> None:
    rows, r = _run(tmp_path, "elasticity-real")
    assert r["data"]["stores"] == 83 and len(r["brands"]) == 11
    m = r["summary"]
    for variant, label in (("raw", "salesopt raw"), ("no_promo", "ablation promo = 0")):
        shown = rows[f"{label}: median abs(estimate - reference); negative signs"]
        v = m[variant]
        assert shown[1] == f"{v['median_abs_diff']:.2f}; {v['negative']} of {v['estimates']}"
        assert shown[3] == ("met" if v["negative"] == 11 else "missed")
    # the promotion term matters on real data: without it the estimates move away
    assert m["no_promo"]["median_abs_diff"] > m["raw"]["median_abs_diff"]
    censored = sum(b["survivors_guardrail"] == "censored" for b in r["brands"].values())
    assert m["censored_old_rule"] == censored
    assert (
        rows[next(k for k in rows if k.startswith("old rule (quantity"))][1] == f"{censored} of 11"
    )


def test_forecast_bench(tmp_path: Path) -> None:
    args = ("--series", "24", "--weeks", "80", "--loop-sample", "6", "--folds", "1",
            "--cost-sample", "3", "--mixture", "8")  # fmt: skip
    rows, r = _run(tmp_path, "forecast", *args)
    # every series gets a status through the Spark fan-out
    assert sum(r["spark"]["status_counts"].values()) == 24 and r["loop"]["series"] == 6
    # efficiency: Spark's series/s over cores x the serial loop's series/s, as printed
    spark_rate = float(rows["Spark series/s"][1])
    loop_rate = float(rows["loop series/s"][1])
    efficiency = rows["parallel efficiency"]
    assert float(efficiency[1]) == pytest.approx(
        spark_rate / (r["cores"] * loop_rate), rel=0.01, abs=0.002
    )
    assert efficiency[3] == _status(efficiency)
    for label in ("104-week weekly", "120-month monthly"):
        cost = rows[f"CPU s per series, {label}"]
        assert float(cost[1]) > 0 and cost[3] == _status(cost)
    # one backtest fold: the chosen models and the seasonal naive have a median MASE
    assert rows["median MASE, Spark run"][1]
    for frequency in ("weekly", "monthly"):  # 8 planted series: 2 of each pattern
        mixture = r["planted_mixture"][frequency]
        assert set(mixture["regular"]) == {"model", "arima", "ets", "theta", "seasonal_naive"}
        assert set(mixture["intermittent"]) == {"model", "croston", "sba", "tsb",
                                                "seasonal_naive"}  # fmt: skip
        check = rows[f"served median below each family's and the naive's, {frequency}"]
        best = min(v for m, v in mixture["regular"].items() if m != "model")
        assert check[1:] == (f"{mixture['regular']['model']:.3f}", f"< {best:.3f}",
                             "met" if mixture["regular"]["model"] < best else "missed")  # fmt: skip
    real = r["real_monthly_backtest"]
    assert {name: real[name]["n_obs"] for name in REAL_MONTHS} == REAL_MONTHS
    assert {f"MASE, {name}" for name in REAL_MONTHS} <= set(rows)


def test_forecast_intermittent_bench(tmp_path: Path) -> None:
    rows, r = _run(tmp_path, "forecast-intermittent", "--limit", "40")
    assert r["series"] == 40 and sum(r["served_by"].values()) == 40
    methods = r["methods"]
    assert set(methods) == {"model", "croston", "sba", "tsb", "zero", "mean", "seasonal_naive"}
    for method, v in methods.items():
        shown = rows[f"{method}: MASE, RMSSE, bias"][1]
        assert shown == f"{v['mase']:.3f}, {v['rmsse']:.3f}, {v['bias']:+.3f}"
    assert methods["zero"]["bias"] == -1.0  # a zero forecast misses every unit
    assert r["served_by"] == {"tsb": 40}  # the first 40 series are all intermittent
    best = min(methods[m]["rmsse"] for m in ("croston", "sba"))
    served = rows["served RMSSE below Croston's and SBA's"]
    assert served[2] == f"< {best:.3f}"
    assert served[3] == ("met" if methods["model"]["rmsse"] < best else "missed")


def test_forecast_real_bench(tmp_path: Path) -> None:
    rows, r = _run(tmp_path, "forecast-real", "--series", "6", "--folds", "1")
    assert r["series"] == 6 and r["horizon"] == 18
    methods = r["methods"]
    assert set(methods) == {"model", "arima", "ets", "theta", "seasonal_naive"}
    for method, v in methods.items():
        shown = rows[f"{method}: MASE mean / median, sMAPE"][1]
        assert shown == f"{v['mean_mase']:.3f} / {v['median_mase']:.3f}, {v['mean_smape']:.2f}"
    best = min(methods[f]["mean_mase"] for f in ("arima", "ets", "theta"))
    served = rows["served mean MASE below each family's"]
    assert served[2] == f"< {best:.3f}"
    assert served[3] == ("met" if methods["model"]["mean_mase"] < best else "missed")
    for level, key in (("80%", "coverage_0.8"), ("95%", "coverage_0.95")):
        raw = rows[f"served {level} interval coverage, uncalibrated"]
        assert raw[1] == f"{methods['model'][key]:.3f}"
        calibrated = rows[f"served {level} interval coverage, calibrated"]
        assert calibrated[1] == f"{r['calibration'][key]:.3f}"
        nominal = float(level[:2]) / 100
        within = abs(r["calibration"][key] - nominal) <= 0.05
        assert calibrated[3] == ("met" if within else "missed")
    assert sum(r["served_by"].values()) == 6
    assert 0 < r["cpu_s_per_series_forecast"] < r["cpu_s_per_series_with_backtest"]
