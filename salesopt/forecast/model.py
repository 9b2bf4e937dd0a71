"""The per-product function: plain pandas in, pandas out, no Spark. Output schema next to it.

`forecast_product(series, spec, origin)` takes one product's complete series (columns
`product_id`, `ds`, `y`; one row per period, zero-filled, ending at `origin`) and returns rows of
four kinds in one frame (OUTPUT_SCHEMA), which the stage turns into the four gold tables:

- `forecast`: one row per horizon step and interval level;
- `status`: exactly one row (ok / fallback / failed, model, order, reason, n_obs, AICc, seconds);
- `metric`: rolling-origin backtest error sums per method (`model`, each family of the served
  combination, `seasonal_naive`), horizon bucket and level;
- `score`: per backtest point and level of the served forecast, its calibration score
  (`calibration.scores`), labelled with the product's served model and horizon bucket.

A domain problem (short, constant, zero, intermittent, non-converging, slow, exploding series)
becomes a fallback forecast; an unexpected error becomes a `failed` status row with no forecast.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from salesopt.config import ForecastSettings
from salesopt.forecast import backtest, calibration, fallbacks
from salesopt.forecast.chain import ChainSpec, Outcome, choose, finish

log = logging.getLogger(__name__)

OUTPUT_SCHEMA = (
    "product_id string, kind string, step int, ds date, level double, yhat double, "
    "yhat_lower double, yhat_upper double, model string, status string, model_order string, "
    "reason string, n_obs int, aicc double, fit_seconds double, method string, horizon string, "
    "n_folds int, "
    "n_points double, sum_abs_error double, sum_actual double, sum_error double, "
    "sum_scaled_error double, n_scaled double, sum_smape double, covered double, score double"
)
OUTPUT_TYPES = dict(part.strip().split(" ") for part in OUTPUT_SCHEMA.split(","))
OUTPUT_COLUMNS = list(OUTPUT_TYPES)
_PANDAS_TYPES: dict[str, Any] = {"string": object, "int": "Int32", "double": "float64"}


def _typed(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame with one fixed dtype per OUTPUT_SCHEMA column (Arrow needs no guessing)."""
    frame = pd.DataFrame.from_records(rows, columns=OUTPUT_COLUMNS)
    for name, kind in OUTPUT_TYPES.items():
        if kind == "date":
            frame[name] = pd.to_datetime(frame[name]).dt.date
        else:
            frame[name] = frame[name].astype(_PANDAS_TYPES[kind])
    return frame


@dataclass(frozen=True)
class ForecastSpec(ChainSpec):
    """ChainSpec plus the horizon and the backtest layout."""

    horizon: int = 8
    backtest_folds: int = 3
    backtest_horizon: int | None = None  # None: the forecast horizon

    @classmethod
    def from_settings(cls, s: ForecastSettings) -> ForecastSpec:
        names = {f.name for f in fields(cls)}
        values = {name: getattr(s, name) for name in names if hasattr(s, name)}
        values["levels"] = tuple(s.interval_levels)
        return cls(**values)

    def chain(self) -> ChainSpec:
        return ChainSpec(**{f.name: getattr(self, f.name) for f in fields(ChainSpec)})


_limited = False


def limit_blas_threads() -> None:
    """One BLAS/OpenMP thread in this process (once; after numpy, scipy and statsmodels load).

    Several threads per Python worker oversubscribe the cores and make the tiny matrix
    operations of a Kalman filter many times slower.
    """
    global _limited
    if _limited:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        log.warning("threadpoolctl missing: BLAS threads not limited")
    else:
        threadpool_limits(limits=1)
    _limited = True


def period_starts(origin: date, steps: int, frequency: str) -> list[date]:
    """Start dates of the `steps` periods after the period starting at `origin`."""
    if frequency == "monthly":
        return [
            (pd.Timestamp(origin) + pd.DateOffset(months=i)).date() for i in range(1, steps + 1)
        ]
    days = 7 if frequency == "weekly" else 1
    return [
        (pd.Timestamp(origin) + pd.Timedelta(days=days * i)).date() for i in range(1, steps + 1)
    ]


def clean(series: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Units in period order: NaN interpolated (edges filled), negatives set to 0; NaN count."""
    rows = series.dropna(subset=["ds"]).sort_values("ds")
    y = pd.to_numeric(rows["y"], errors="coerce").astype(float)
    n_nan = int(y.isna().sum())
    if n_nan:
        y = y.interpolate(limit_direction="both").fillna(0.0)
    return np.clip(y.to_numpy(dtype=float), 0.0, None), n_nan


def _forecast_rows(pid: str, out: Outcome, ds: list[date]) -> list[dict[str, Any]]:
    return [
        {
            "product_id": pid, "kind": "forecast", "step": i + 1, "ds": ds[i], "level": lv,
            "yhat": float(out.point[i]), "yhat_lower": float(lo[i]), "yhat_upper": float(hi[i]),
            "model": out.model,
        }
        for lv, (lo, hi) in out.intervals.items()
        for i in range(len(ds))
    ]  # fmt: skip


def horizon_buckets(horizon: int) -> list[tuple[str, int, int]]:
    """(label, first step, last step): `all`, then steps 1-4, 5-8 and 9 to the horizon."""
    out = [("all", 1, horizon)]
    for first, last in ((1, 4), (5, 8), (9, horizon)):
        if first <= horizon:
            last = min(last, horizon)
            out.append((f"{first}-{last}", first, last))
    return out


def _fold_methods(out: Outcome, served: Outcome) -> dict[str, Outcome]:
    """The served forecast and each member's; a member the fold has not fitted counts the served.

    Members are the families of the served combination, or Croston, SBA and TSB for an
    intermittent series (on the whole history).
    """
    runs = {"model": served}
    for family in out.members:
        if family in served.members:
            point, iv = served.members[family]
            runs[family] = finish(Outcome(served.status, family, point, iv))
        else:
            runs[family] = served
    return runs


def _backtest_rows(
    pid: str, y: np.ndarray, spec: ForecastSpec, out: Outcome
) -> list[dict[str, Any]]:
    """Error sums per method and horizon bucket on the same out-of-sample folds.

    Methods: `model` (the served procedure), each family of the served combination (its
    structure refitted on the fold, see docs/forecasting.md) and `seasonal_naive` (the naive,
    lag 1, where the fold's training part is shorter than a season).
    """
    lag = spec.season.naive_lag
    chain = spec.chain()
    horizon = spec.backtest_horizon or spec.horizon
    buckets = horizon_buckets(horizon)
    sums: dict[tuple[str, str], dict[str, float]] = {}
    hits: dict[tuple[str, str, float], float] = {}
    score_rows: list[dict[str, Any]] = []
    steps = np.arange(1, horizon + 1)
    # scores are labelled by the buckets of the delivered forecast they calibrate; a bucket the
    # backtest horizon does not cover whole gets none (its intervals keep factor 1)
    step_bucket = {
        step: label for label, first, last in horizon_buckets(spec.horizon)[1:]
        if last <= horizon
        for step in range(first, last + 1)
    }  # fmt: skip
    # a fold needs the history the served procedure needs (shorter series fall back anyway)
    splits = backtest.folds(len(y), spec.backtest_folds, horizon, max(spec.min_obs, 2))
    # the whole history's structures and intermittency decision; {} when the families were
    # tried and none served; None for the fallbacks decided by the series' own checks
    fixed = out.specs if out.families_tried or out.specs else None
    for train_end, test_end in splits:
        train, actual = y[:train_end], y[train_end:test_end]
        scale = backtest.mase_scale(train, lag)
        served = finish(choose(train, len(actual), chain, fixed))
        runs = _fold_methods(out, served)
        runs["seasonal_naive"] = finish(
            Outcome("fallback", "seasonal_naive",
                    *fallbacks.seasonal_naive(train, len(actual), spec.levels,
                                              lag if len(train) >= lag else 1))
        )  # fmt: skip
        for lv, (lo, hi) in served.intervals.items():
            values = calibration.scores(actual, served.point, lo, hi)
            score_rows += [
                {"product_id": pid, "kind": "score", "model": out.model, "level": lv,
                 "step": int(step), "horizon": step_bucket[int(step)], "score": float(value)}
                for step, value in zip(steps, values, strict=True)
                if step in step_bucket and not np.isnan(value)
            ]  # fmt: skip
        for method, run in runs.items():
            for label, first, last in buckets:
                cut = slice(first - 1, last)
                part = backtest.error_sums(actual[cut], run.point[cut], scale)
                sums[(method, label)] = backtest.add(sums.get((method, label), {}), part)
                for lv, (lo, hi) in run.intervals.items():
                    key = (method, label, lv)
                    hits[key] = hits.get(key, 0.0) + backtest.covered(actual[cut], lo[cut], hi[cut])
    return [
        {"product_id": pid, "kind": "metric", "method": method, "horizon": label, "level": lv,
         "n_folds": len(splits), "covered": hits[(method, label, lv)], **sums[(method, label)]}
        for (method, label) in sums
        for lv in spec.levels
    ] + score_rows  # fmt: skip


def forecast_product(series: pd.DataFrame, spec: ForecastSpec, origin: date) -> pd.DataFrame:
    """Forecast, status and backtest rows for one product (see the module docstring)."""
    limit_blas_threads()
    pid = str(series["product_id"].iloc[0])
    start = time.perf_counter()
    n_obs = 0
    try:
        y, n_nan = clean(series)
        n_obs = len(y)
        out = finish(choose(y, spec.horizon, spec.chain()))
        seconds = time.perf_counter() - start
        rows = _forecast_rows(pid, out, period_starts(origin, spec.horizon, spec.frequency))
        rows += _backtest_rows(pid, y, spec, out)
        notes = [*([out.reason] if out.reason else []), *out.notes]
        if n_nan:
            notes.append(f"{n_nan} missing values interpolated")
        status = {
            "status": out.status, "model": out.model, "model_order": out.order,
            "reason": "; ".join(notes) or None, "aicc": out.aicc,
        }  # fmt: skip
    except Exception as exc:  # one bad series must not kill the job
        log.warning("forecast failed for %s: %s", pid, traceback.format_exc(limit=3))
        rows, seconds = [], time.perf_counter() - start
        status = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}
    rows.append({"product_id": pid, "kind": "status", "n_obs": n_obs, "fit_seconds": seconds,
                 **status})  # fmt: skip
    return _typed(rows)
