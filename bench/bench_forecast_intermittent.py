"""Intermittent-demand accuracy on real public purchase data (CDNOW, weekly).

    python -m bench forecast-intermittent

The CDNOW master file (69,659 CD purchases of 23,570 customers, January 1997 to June 1998)
ships in the `Lifetimes` wheel (downloaded once with `pip download --no-deps`, read from the
wheel, not installed). Each customer's CDs bought per week, from the week of the first purchase
(as the pipeline starts a product's series at its first sale) to week 78, form a count series;
a customer with at least `--min-weeks` weeks of purchases before the last 8 weeks is one series
(89 % of their weeks are zero; the cohort buys less and less over time, as a
range of products does when it ages). The last 8 weeks are held out; salesopt's per-product
chain forecasts 8 weeks from the first 70 and is scored against:

- the intermittent methods it compares (`croston`, `sba`, `tsb`, from the same chain run);
- simple baselines: `zero`, the `mean` of the history, the `seasonal_naive` (lag 52).

Metrics per series, averaged: MASE (scale: in-sample MAE of the naive, lag 1: a seasonal lag
leaves 18 differences, often all zero), RMSSE (the M5 competition's: root of the MSE over the
in-sample MSE of the naive) and bias (sum of errors over the sum of actuals, pooled). MASE
rewards forecasting zero on mostly-zero series (the median of such a series is zero); RMSSE and
bias do not, so the three are read together.
"""

from __future__ import annotations

import argparse
import io
import time
import zipfile
from typing import Any

import numpy as np
import pandas as pd

from bench.common import Row, add_json_option, downloaded_wheel, report

LIFETIMES = "lifetimes==0.11.3"
WEEKS = 78
HORIZON = 8
LAG = 52
METHODS = ("model", "croston", "sba", "tsb", "zero", "mean", "seasonal_naive")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Intermittent forecasts on CDNOW weekly purchases")
    p.add_argument("--min-weeks", type=int, default=4, help="purchase weeks in the training part")
    p.add_argument("--limit", type=int, default=0, help="first N series only (0: all)")
    add_json_option(p)
    return p.parse_args(argv)


def cdnow_weekly(min_weeks: int) -> list[np.ndarray]:
    """Weekly CDs bought, from each customer's first purchase week to week 78, for customers
    with `min_weeks` purchase weeks before the holdout."""
    with zipfile.ZipFile(downloaded_wheel(LIFETIMES)) as wheel:
        raw = wheel.read("lifetimes/datasets/CDNOW_master.txt")
    lines = pd.read_csv(io.BytesIO(raw), sep=r"\s+", dtype={"customer_id": str, "date": str})
    days = (pd.to_datetime(lines["date"], format="%Y%m%d") - pd.Timestamp("1997-01-01")).dt.days
    lines["week"] = days // 7
    weekly = lines[lines["week"] < WEEKS].groupby(["customer_id", "week"])["number_of_cds"].sum()
    grid = weekly.unstack(fill_value=0).reindex(columns=range(WEEKS), fill_value=0)
    values = grid.to_numpy(dtype=float)
    kept = values[(values[:, :-HORIZON] > 0).sum(axis=1) >= min_weeks]
    return [row[int(np.flatnonzero(row)[0]) :] for row in kept]


def evaluate(series: list[np.ndarray]) -> dict[str, Any]:
    """Holdout errors per method, the served models, CPU seconds per series of the chain."""
    from salesopt.forecast import backtest, fallbacks
    from salesopt.forecast.chain import choose, finish
    from salesopt.forecast.model import ForecastSpec

    spec = ForecastSpec(frequency="weekly", horizon=HORIZON, backtest_folds=0).chain()
    sums: dict[str, dict[str, float]] = {m: {"mase": 0.0, "rmsse": 0.0, "error": 0.0}
                                         for m in METHODS}  # fmt: skip
    served: dict[str, int] = {}
    actual_total, n, cpu = 0.0, 0, 0.0
    for y in series:
        train, actual = y[:-HORIZON], y[-HORIZON:]
        scale = backtest.mase_scale(train, 1)
        sq_scale = float(np.mean(np.diff(train) ** 2))
        started = time.process_time()
        out = finish(choose(train, HORIZON, spec))
        cpu += time.process_time() - started
        served[out.model] = served.get(out.model, 0) + 1
        runs = {
            "model": out.point,
            "zero": np.zeros(HORIZON),
            "mean": np.full(HORIZON, float(train.mean())),
            "seasonal_naive": fallbacks.seasonal_naive(train, HORIZON, (0.8,), LAG)[0],
        }
        for method in ("croston", "sba", "tsb"):  # not intermittent: it counts what is served
            runs[method] = out.members[method][0] if method in out.members else out.point
        for method, point in runs.items():
            err = point - actual
            sums[method]["mase"] += float(np.mean(np.abs(err))) / scale
            sums[method]["rmsse"] += float(np.sqrt(np.mean(err**2) / sq_scale))
            sums[method]["error"] += float(err.sum())
        actual_total += float(actual.sum())
        n += 1
    methods = {
        m: {"mase": round(v["mase"] / n, 4), "rmsse": round(v["rmsse"] / n, 4),
            "bias": round(v["error"] / actual_total, 4) if actual_total else float("nan")}
        for m, v in sums.items()
    }  # fmt: skip
    training = np.concatenate([y[:-HORIZON] for y in series])
    return {
        "series": n,
        "zero_share": round(float(np.mean(training == 0)), 3),
        "served_by": served,
        "cpu_s_per_series": round(cpu / n, 5),
        "methods": methods,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    series = cdnow_weekly(args.min_weeks)
    if args.limit:
        series = series[: args.limit]
    print(f"forecast-intermittent: {len(series)} CDNOW customer series, horizon {HORIZON}",
          flush=True)  # fmt: skip
    results = evaluate(series)
    title = (f"intermittent forecasts on real data: {results['series']} CDNOW weekly series "
             f"({results['zero_share']:.0%} zero weeks), horizon {HORIZON}")  # fmt: skip
    report("forecast-intermittent", title, figures(results), results, args.json)
    return 0


def figures(r: dict[str, Any]) -> list[Row]:
    m = r["methods"]
    rows: list[Row] = [
        (f"{method}: MASE, RMSSE, bias",
         f"{v['mase']:.3f}, {v['rmsse']:.3f}, {v['bias']:+.3f}", "", "")
        for method, v in m.items()
    ]  # fmt: skip
    best = min(m[x]["rmsse"] for x in ("croston", "sba"))
    rows.append(("served RMSSE below Croston's and SBA's", f"{m['model']['rmsse']:.3f}",
                 f"< {best:.3f}", "met" if m["model"]["rmsse"] < best else "missed"))  # fmt: skip
    rows.append(("served by", ", ".join(f"{k} {v}" for k, v in sorted(r["served_by"].items())),
                 "", ""))  # fmt: skip
    rows.append(("CPU s per series (forecast)", f"{r['cpu_s_per_series']:.4f}", "", ""))
    return rows
