"""Simple forecasts used when an ARIMA is not possible or not trusted, in original units.

Each returns `(point, {level: (lower, upper)})` for steps 1..horizon. The chain is documented in
docs/forecasting.md: zero (no or only zero sales) -> seasonal naive (at least one season of
history) -> mean of the last season. Intermittent series have their own methods (intermittent.py).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

Intervals = dict[float, tuple[np.ndarray, np.ndarray]]


def z_value(level: float) -> float:
    """Two-sided normal quantile for a central interval of `level`."""
    return float(norm.ppf(0.5 + level / 2.0))


def zero(horizon: int, levels: tuple[float, ...]) -> tuple[np.ndarray, Intervals]:
    point = np.zeros(horizon)
    return point, {lv: (point.copy(), point.copy()) for lv in levels}


def mean_forecast(
    y: np.ndarray, horizon: int, levels: tuple[float, ...], window: int
) -> tuple[np.ndarray, Intervals]:
    """Mean of the last `window` periods; intervals from their spread."""
    recent = y[-window:]
    point = np.full(horizon, float(recent.mean()))
    sd = float(recent.std(ddof=1)) if len(recent) > 1 else 0.0
    width = sd * np.sqrt(1.0 + 1.0 / len(recent))
    return point, {lv: (point - z_value(lv) * width, point + z_value(lv) * width) for lv in levels}


def seasonal_naive(
    y: np.ndarray, horizon: int, levels: tuple[float, ...], lag: int
) -> tuple[np.ndarray, Intervals]:
    """The value one season earlier; intervals widen with the number of seasons ahead."""
    steps = np.arange(horizon)
    point = y[len(y) - lag + steps % lag].astype(float)
    diffs = y[lag:] - y[:-lag]
    sd = float(np.sqrt(np.mean(diffs**2))) if len(diffs) else float(y.std())
    width = sd * np.sqrt(steps // lag + 1.0)
    return point, {lv: (point - z_value(lv) * width, point + z_value(lv) * width) for lv in levels}
