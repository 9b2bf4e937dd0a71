"""Intermittent demand: Croston, SBA and TSB, in original units (docs/forecasting.md).

Each method smooths the demand sizes (at periods with demand) and either the intervals
between demands (Croston; SBA multiplies by `1 - alpha_interval / 2` against Croston's bias)
or the probability of demand in every period (TSB, which decays towards zero while no demand
comes, so a product that stopped selling is not forecast at its old rate). Both smoothing
constants are chosen on GRID by the method's own mean squared one-step-ahead error over the
history. The forecast is flat; the intervals are empirical quantiles of the last `window`
periods. SERVED is the method the chain serves; the others are compared with it in the
backtest.
"""

from __future__ import annotations

import itertools

import numpy as np

from salesopt.forecast.fallbacks import Intervals

GRID = (0.05, 0.1, 0.2, 0.3)
METHODS = ("croston", "sba", "tsb")
SERVED = "tsb"


def _croston(y: np.ndarray, a_size: float, a_gap: float, sba: bool = False) -> tuple[float, float]:
    """(in-sample one-step MSE, final rate) of Croston's recursion: size / interval, times
    `1 - a_gap / 2` for SBA (the bias comes from smoothing the intervals)."""
    deflate = 1.0 - a_gap / 2.0 if sba else 1.0
    demand = np.flatnonzero(y > 0)
    size, gap, last = float(y[demand[0]]), float(demand[0] + 1), int(demand[0])
    sq, n = 0.0, 0
    for t in range(last + 1, len(y)):
        sq += (float(y[t]) - deflate * size / gap) ** 2
        n += 1
        if y[t] > 0:
            size += a_size * (float(y[t]) - size)
            gap += a_gap * (float(t - last) - gap)
            last = t
    return (sq / n if n else 0.0), deflate * size / gap


def _tsb(y: np.ndarray, a_size: float, a_prob: float) -> tuple[float, float]:
    """(in-sample one-step MSE, final probability x size) of the TSB recursion."""
    demand = np.flatnonzero(y > 0)
    size, prob = float(y[demand[0]]), 1.0 / float(demand[0] + 1)
    sq, n = 0.0, 0
    for t in range(int(demand[0]) + 1, len(y)):
        sq += (float(y[t]) - prob * size) ** 2
        n += 1
        occurred = float(y[t] > 0)
        prob += a_prob * (occurred - prob)
        if occurred:
            size += a_size * (float(y[t]) - size)
    return (sq / n if n else 0.0), prob * size


def rates(y: np.ndarray) -> dict[str, tuple[float, str]]:
    """Per method: the forecast rate per period and its parameters as text.

    `y` needs at least one period with demand. Ties on the grid go to the first (smallest)
    constants, so the result is deterministic.
    """
    out: dict[str, tuple[float, str]] = {}
    grid = list(itertools.product(GRID, GRID))
    for method, names in (("croston", ("size", "interval")), ("sba", ("size", "interval")),
                          ("tsb", ("size", "probability"))):  # fmt: skip
        if method == "tsb":
            runs = [(*_tsb(y, a, b), a, b) for a, b in grid]
        else:
            runs = [(*_croston(y, a, b, sba=method == "sba"), a, b) for a, b in grid]
        _, rate, a, b = min(runs, key=lambda r: r[0])
        out[method] = (rate, f"{method}(alpha_{names[0]}={a:g}, alpha_{names[1]}={b:g})")
    return out


def forecasts(
    y: np.ndarray, horizon: int, levels: tuple[float, ...], window: int
) -> dict[str, tuple[np.ndarray, Intervals, str]]:
    """Per method: flat point forecast, empirical intervals of the last `window` periods, label."""
    recent = y[-window:]
    bounds: Intervals = {}
    for lv in levels:
        lo, hi = np.quantile(recent, [0.5 - lv / 2.0, 0.5 + lv / 2.0])
        bounds[lv] = (np.full(horizon, float(lo)), np.full(horizon, float(hi)))
    return {
        method: (np.full(horizon, rate), {lv: (lo.copy(), hi.copy()) for lv, (lo, hi) in
                                          bounds.items()}, label)
        for method, (rate, label) in rates(y).items()
    }  # fmt: skip
