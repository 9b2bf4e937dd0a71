"""Rolling-origin evaluation: fold boundaries and error sums, pure numpy.

Folds are non-overlapping windows of `horizon` periods at the end of the series; fold i trains
on everything before its window, so every error is out of sample. Sums (not ratios) are kept per
product so that products and folds add up exactly; `metrics` turns sums into ratios.
"""

from __future__ import annotations

import numpy as np

SUM_FIELDS = (
    "n_points",
    "sum_abs_error",
    "sum_actual",
    "sum_error",
    "sum_scaled_error",
    "n_scaled",
    "sum_smape",
)


def folds(n: int, n_folds: int, horizon: int, min_train: int) -> list[tuple[int, int]]:
    """(train_end, test_end) index pairs, oldest first; folds with too little training dropped."""
    out = []
    for i in range(n_folds, 0, -1):
        train_end = n - i * horizon
        if train_end >= min_train:
            out.append((train_end, train_end + horizon))
    return out


def mase_scale(train: np.ndarray, lag: int) -> float:
    """In-sample MAE of the seasonal naive forecast (naive when the history is shorter)."""
    m = lag if len(train) > lag else 1
    if len(train) <= m:
        return float("nan")
    scale = float(np.mean(np.abs(train[m:] - train[:-m])))
    return scale if scale > 0 else float("nan")


def error_sums(actual: np.ndarray, pred: np.ndarray, scale: float) -> dict[str, float]:
    """Additive error sums of one fold (see SUM_FIELDS)."""
    err = pred - actual
    denom = np.abs(actual) + np.abs(pred)
    smape = np.divide(2.0 * np.abs(err), denom, out=np.zeros_like(err), where=denom > 0)
    scaled = np.isfinite(scale)
    return {
        "n_points": float(len(actual)),
        "sum_abs_error": float(np.abs(err).sum()),
        "sum_actual": float(np.abs(actual).sum()),
        "sum_error": float(err.sum()),
        "sum_scaled_error": float(np.abs(err).sum() / scale) if scaled else 0.0,
        "n_scaled": float(len(actual)) if scaled else 0.0,
        "sum_smape": float(smape.sum()),
    }


def covered(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> int:
    """Points of `actual` inside [lower, upper]."""
    return int(((actual >= lower) & (actual <= upper)).sum())


def add(total: dict[str, float], part: dict[str, float]) -> dict[str, float]:
    return {key: total.get(key, 0.0) + value for key, value in part.items()}


def metrics(sums: dict[str, float]) -> dict[str, float]:
    """MASE, sMAPE (percent), WAPE, bias (relative) from sums; NaN where undefined."""
    nan = float("nan")
    n, actual = sums.get("n_points", 0.0), sums.get("sum_actual", 0.0)
    n_scaled = sums.get("n_scaled", 0.0)
    return {
        "mase": sums["sum_scaled_error"] / n_scaled if n_scaled else nan,
        "smape": 100.0 * sums["sum_smape"] / n if n else nan,
        "wape": sums["sum_abs_error"] / actual if actual else nan,
        "bias": sums["sum_error"] / actual if actual else nan,
    }
