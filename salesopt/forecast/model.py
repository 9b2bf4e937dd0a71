"""The per-product function: plain pandas in, pandas out, no Spark. Output schema next to it.

`forecast_product(series, spec, origin)` takes one product's complete series (columns
`product_id`, `ds`, `y`; one row per period, zero-filled, ending at `origin`) and returns rows of
three kinds in one frame (OUTPUT_SCHEMA), which the stage splits into the three gold tables:

- `forecast`: one row per horizon step and interval level;
- `status`: exactly one row (ok / fallback / failed, model, order, reason, n_obs, AICc, seconds);
- `metric`: rolling-origin backtest error sums per method (`model`, `seasonal_naive`) and level.

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
from salesopt.forecast import backtest, fallbacks
from salesopt.forecast.chain import ChainSpec, Outcome, choose, finish

log = logging.getLogger(__name__)

OUTPUT_SCHEMA = (
    "product_id string, kind string, step int, ds date, level double, yhat double, "
    "yhat_lower double, yhat_upper double, model string, status string, model_order string, "
    "reason string, n_obs int, aicc double, fit_seconds double, method string, n_folds int, "
    "n_points double, sum_abs_error double, sum_actual double, sum_error double, "
    "sum_scaled_error double, n_scaled double, sum_smape double, covered double"
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
    backtest_horizon: int = 4

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


def _backtest_rows(pid: str, y: np.ndarray, spec: ForecastSpec) -> list[dict[str, Any]]:
    """Error sums of the chain and of the seasonal naive on the same out-of-sample folds."""
    lag = spec.season.naive_lag
    chain = spec.chain()
    sums: dict[str, dict[str, float]] = {"model": {}, "seasonal_naive": {}}
    hits: dict[tuple[str, float], float] = {}
    splits = backtest.folds(len(y), spec.backtest_folds, spec.backtest_horizon, lag + 1)
    for train_end, test_end in splits:
        train, actual = y[:train_end], y[train_end:test_end]
        scale = backtest.mase_scale(train, lag)
        runs = {
            "model": finish(choose(train, len(actual), chain)),
            "seasonal_naive": finish(
                Outcome("fallback", "seasonal_naive",
                        *fallbacks.seasonal_naive(train, len(actual), spec.levels, lag))
            ),
        }  # fmt: skip
        for method, out in runs.items():
            sums[method] = backtest.add(sums[method], backtest.error_sums(actual, out.point, scale))
            for lv, (lo, hi) in out.intervals.items():
                hits[(method, lv)] = hits.get((method, lv), 0.0) + backtest.covered(actual, lo, hi)
    if not splits:
        return []
    return [
        {"product_id": pid, "kind": "metric", "method": method, "level": lv,
         "n_folds": len(splits), "covered": hits[(method, lv)], **sums[method]}
        for method in sums
        for lv in spec.levels
    ]  # fmt: skip


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
        rows += _backtest_rows(pid, y, spec)
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
