"""Interval calibration: conformal scaling of interval widths from backtest errors.

For each backtest point of the served forecast, the **score** of a level is how far the actual
lies from the point forecast in units of that side's interval half-width, on the log1p scale:
`(log1p(y) - log1p(yhat)) / (log1p(upper) - log1p(yhat))` above the point, the mirror below.
The interval of factor `c` (each half-width times `c` on log1p) covers the point exactly when
`score <= c`, so the factor that gives the nominal coverage on the backtest is the `level`
quantile of the scores. Factors are estimated across products, per served model, level and
horizon bucket (`stage.calibration_factors`), and applied to the forecast's bounds
(`scaled_bounds`): a split-conformal correction that keeps each model's interval shape and
fixes its width. Docs: docs/forecasting.md, "Interval calibration".
"""

from __future__ import annotations

import numpy as np


def scores(
    actual: np.ndarray, point: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """Scores of each point (0 on the forecast, 1 on the bound).

    NaN where that side of the interval has zero width (a constant or zero forecast): no
    factor can widen it, so such points say nothing about a factor and are left out.
    """
    y, p = np.log1p(actual), np.log1p(point)
    above = actual >= point
    width = np.where(above, np.log1p(upper) - p, p - np.log1p(lower))
    out = np.full(len(actual), np.nan)
    np.divide(np.abs(y - p), width, out=out, where=width > 0)
    return out


def factor(values: np.ndarray, level: float) -> float:
    """The smallest observed score with at least `level` of the scores at or below it."""
    return float(np.quantile(values, level, method="inverted_cdf"))


def scaled_bounds(
    point: np.ndarray, lower: np.ndarray, upper: np.ndarray, c: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds with each log1p half-width times `c` (the point stays; bounds stay >= 0)."""
    p = np.log1p(point)
    lo = np.expm1(p - c * (p - np.log1p(lower)))
    hi = np.expm1(p + c * (np.log1p(upper) - p))
    return np.maximum(lo, 0.0), hi
