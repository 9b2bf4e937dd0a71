"""One series in, one forecast out: checks, automatic ARIMA, sanity bound and the fallback chain.

Order of decisions (docs/forecasting.md):
no observations or all zero -> `zero`; shorter than `min_obs` -> `seasonal_naive` if it has a
full season, else `mean`; constant -> `mean`; share of zero periods above `intermittent_share`
-> `croston`; otherwise automatic ARIMA on log1p(units). The ARIMA falls back to seasonal naive
(else mean) when no candidate fits or converges, when the time limit passes, or when its forecast
is not finite or exceeds `explode_factor` x the largest observation. Every result is truncated
at zero and its intervals are ordered so that lower <= yhat <= upper.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from salesopt.forecast import fallbacks
from salesopt.forecast.selection import (
    SEASONALITY,
    Seasonality,
    TimeLimitError,
    fit_final,
    forecast_fit,
    select,
)

FINAL_CANDIDATES = 3  # ranked candidates tried by MLE before falling back


@dataclass(frozen=True)
class ChainSpec:
    """What the chain needs from ForecastSettings."""

    frequency: str = "weekly"
    levels: tuple[float, ...] = (0.8, 0.95)
    order: tuple[int, int, int] | None = None
    time_limit_s: float = 20.0
    min_obs: int = 16
    max_models: int = 16
    max_iter: int = 100
    explode_factor: float = 3.0
    intermittent_share: float = 0.5

    @property
    def season(self) -> Seasonality:
        return SEASONALITY[self.frequency]


@dataclass
class Outcome:
    """A forecast in original units with how it was made."""

    status: str  # ok | fallback
    model: str
    point: np.ndarray
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]
    order: str | None = None
    reason: str | None = None
    aicc: float | None = None
    notes: list[str] = field(default_factory=list)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raises TimeLimitError in this thread after `seconds` (SIGALRM; main thread on Unix).

    Elsewhere only the cooperative deadline checks inside the search and the optimizer apply.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _raise(_signum: int, _frame: object) -> None:
        raise TimeLimitError

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _fallback(y: np.ndarray, horizon: int, spec: ChainSpec, reason: str) -> Outcome:
    lag = spec.season.naive_lag
    if len(y) >= lag:
        point, iv = fallbacks.seasonal_naive(y, horizon, spec.levels, lag)
        return Outcome("fallback", "seasonal_naive", point, iv, reason=reason)
    point, iv = fallbacks.mean_forecast(y, horizon, spec.levels, lag)
    return Outcome("fallback", "mean", point, iv, reason=reason)


def _arima(y: np.ndarray, horizon: int, spec: ChainSpec, deadline: float) -> Outcome:
    z = np.log1p(y)
    ranked, tried = select(z, spec.season, deadline, spec.order, spec.max_models)
    for approx in ranked[:FINAL_CANDIDATES]:
        fit = fit_final(z, approx, spec.season, deadline, spec.max_iter)
        if fit is None:
            continue
        mean, iv = forecast_fit(fit, len(z), horizon, spec.season, spec.levels)
        point = np.expm1(mean)
        bound = spec.explode_factor * max(float(y.max()), 1.0)
        if not np.all(np.isfinite(point)) or float(point.max()) > bound:
            return _fallback(y, horizon, spec, f"forecast exploded beyond {bound:.4g}")
        intervals = {lv: (np.expm1(lo), np.expm1(hi)) for lv, (lo, hi) in iv.items()}
        notes = [] if fit.candidate == ranked[0].candidate else ["best candidate did not converge"]
        label = fit.label(spec.season)
        return Outcome("ok", "arima", point, intervals, label, None, fit.aicc, notes)
    what = f"none of {min(len(ranked), FINAL_CANDIDATES)} ranked of {tried} candidates converged"
    return _fallback(
        y, horizon, spec, what if ranked else f"no candidate of {tried} could be fitted"
    )


def choose(y: np.ndarray, horizon: int, spec: ChainSpec) -> Outcome:
    """The forecast for `y` (complete, zero-filled, non-negative, no NaN) by the chain above."""
    if len(y) == 0 or not np.any(y > 0):
        point, iv = fallbacks.zero(horizon, spec.levels)
        reason = "no complete period of history" if len(y) == 0 else "all zero"
        return Outcome("fallback", "zero", point, iv, reason=reason)
    if len(y) < spec.min_obs:
        return _fallback(y, horizon, spec, f"too short: {len(y)} < min_obs {spec.min_obs}")
    if np.ptp(y) == 0:
        point, iv = fallbacks.mean_forecast(y, horizon, spec.levels, len(y))
        return Outcome("fallback", "mean", point, iv, reason="constant")
    zero_share = float(np.mean(y == 0))
    if zero_share > spec.intermittent_share:
        point, iv = fallbacks.croston_sba(y, horizon, spec.levels, spec.season.naive_lag)
        return Outcome(
            "fallback", "croston", point, iv, reason=f"intermittent: {zero_share:.0%} zero"
        )
    deadline = time.monotonic() + spec.time_limit_s
    try:
        with time_limit(spec.time_limit_s + 0.5):
            return _arima(y, horizon, spec, deadline)
    except TimeLimitError:
        return _fallback(y, horizon, spec, f"time limit {spec.time_limit_s:g}s exceeded")


def finish(outcome: Outcome) -> Outcome:
    """Truncates at zero and orders the intervals around the point forecast."""
    point = np.maximum(outcome.point, 0.0)
    intervals = {}
    for lv, (lo, hi) in outcome.intervals.items():
        intervals[lv] = (np.clip(np.minimum(lo, point), 0.0, None), np.maximum(hi, point))
    outcome.point, outcome.intervals = point, intervals
    return outcome
