"""Series with planted level, trend and seasonality, for tests and benchmarks of the forecaster.

Grain of every frame: one row per (product_id, ds). `planted_series`: Poisson draws around
`level * (1 + trend * years) * (1 + amp * sin(2 pi (t / period + phase)))`, so the season is
multiplicative and the truth is known. `planted_mixture` deals four patterns in turn (see
there), each suiting a different model family. Seeded: the same arguments give the same frame.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

PERIOD_DAYS = {"daily": 1, "weekly": 7}
SEASON_PERIOD = {"daily": 7.0, "weekly": 365.25 / 7.0, "monthly": 12.0}
PERIODS_PER_YEAR = {"daily": 365.25, "weekly": 365.25 / 7.0, "monthly": 12.0}


def calendar(start: date, periods: int, frequency: str) -> pd.DatetimeIndex:
    """`periods` period starts from `start` (Mondays for weekly, month starts for monthly)."""
    if frequency == "monthly":
        return pd.date_range(start, periods=periods, freq="MS")
    return pd.date_range(start, periods=periods, freq=f"{PERIOD_DAYS[frequency]}D")


def planted_series(
    n_series: int,
    periods: int,
    frequency: str = "weekly",
    seed: int = 0,
    start: date = date(2022, 1, 3),
) -> pd.DataFrame:
    """Columns product_id, ds (date), y (float units): trend and a season per series."""
    rng = np.random.default_rng(seed)
    ds = calendar(start, periods, frequency).date
    t = np.arange(periods, dtype=float)
    frames = []
    for i in range(n_series):
        level = float(np.exp(rng.uniform(np.log(5.0), np.log(200.0))))
        trend = rng.normal(0.0, 0.25)
        amp = rng.uniform(0.2, 0.6)
        phase = rng.uniform(0.0, 1.0)
        mult = np.maximum(0.2, 1.0 + trend * t / PERIODS_PER_YEAR[frequency])
        season = 1.0 + amp * np.sin(2.0 * np.pi * (t / SEASON_PERIOD[frequency] + phase))
        y = rng.poisson(level * mult * season).astype(float)
        frames.append(pd.DataFrame({"product_id": f"S{i:06d}", "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


MIXTURE = ("trend", "local_level", "autoregressive", "intermittent")


def planted_mixture(
    n_series: int,
    periods: int,
    frequency: str = "weekly",
    seed: int = 0,
    start: date = date(2022, 1, 3),
) -> pd.DataFrame:
    """Columns product_id, ds, y, pattern; series i has pattern `MIXTURE[i % 4]`.

    All but `intermittent` carry a multiplicative season of random amplitude and phase:
    - `trend`: a deterministic linear trend (as `planted_series`);
    - `local_level`: the log level is a random walk (sd 0.06 a period): no trend to find;
    - `autoregressive`: AR(1) deviations (phi 0.85, sd 0.12) around a constant log level;
    - `intermittent`: Poisson demand with a mean of 0.3 a period (mostly zero periods).
    """
    rng = np.random.default_rng(seed)
    ds = calendar(start, periods, frequency).date
    t = np.arange(periods, dtype=float)
    frames = []
    for i in range(n_series):
        pattern = MIXTURE[i % len(MIXTURE)]
        level = float(np.exp(rng.uniform(np.log(10.0), np.log(200.0))))
        amp, phase = rng.uniform(0.2, 0.5), rng.uniform(0.0, 1.0)
        season = 1.0 + amp * np.sin(2.0 * np.pi * (t / SEASON_PERIOD[frequency] + phase))
        if pattern == "trend":
            trend = rng.normal(0.0, 0.3)
            mean = level * np.maximum(0.2, 1.0 + trend * t / PERIODS_PER_YEAR[frequency]) * season
        elif pattern == "local_level":
            mean = level * np.exp(np.cumsum(rng.normal(0.0, 0.06, periods))) * season
        elif pattern == "autoregressive":
            dev = np.zeros(periods)
            for j in range(1, periods):
                dev[j] = 0.85 * dev[j - 1] + rng.normal(0.0, 0.12)
            mean = level * np.exp(dev) * season
        else:
            mean = np.full(periods, 0.3)
        y = rng.poisson(mean).astype(float)
        frames.append(pd.DataFrame({"product_id": f"M{i:06d}", "ds": ds, "y": y,
                                    "pattern": pattern}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)
