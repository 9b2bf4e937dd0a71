"""Croston, SBA and TSB for intermittent series: recursions, parameter choice, served rows."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from salesopt.forecast import intermittent
from salesopt.forecast.model import ForecastSpec, forecast_product
from salesopt.forecast.synthetic import planted_mixture

ORIGIN = date(2024, 12, 30)


def _frame(values) -> pd.DataFrame:
    n = len(values)
    ds = [ORIGIN - timedelta(days=7 * (n - 1 - i)) for i in range(n)]
    return pd.DataFrame({"product_id": "P1", "ds": ds, "y": np.asarray(values, dtype=float)})


def test_recursions_match_a_hand_computation() -> None:
    y = np.array([0.0, 2.0, 0.0, 0.0, 4.0])
    # Croston: size 2, interval 2 after the first demand; one-step forecasts 1, 1, 1
    mse, rate = intermittent._croston(y, 0.5, 0.5)
    assert (mse, rate) == pytest.approx((11.0 / 3.0, 3.0 / 2.5))
    # TSB: probability 1/2 decays to 1/4 and 1/8, forecasts 1, 0.5, 0.25; then 9/16 x 3
    mse, rate = intermittent._tsb(y, 0.5, 0.5)
    assert (mse, rate) == pytest.approx(((1.0 + 0.25 + 3.75**2) / 3.0, 0.5625 * 3.0))


def test_sba_is_croston_deflated_by_half_its_size_constant() -> None:
    y = np.array([0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 5, 0, 0] * 3, dtype=float)
    got = intermittent.rates(y)
    alpha = float(got["croston"][1].split("alpha_size=")[1].split(",")[0])
    assert alpha in intermittent.GRID
    assert got["sba"][0] == pytest.approx((1.0 - alpha / 2.0) * got["croston"][0])


def test_tsb_lets_a_product_that_stopped_selling_fade() -> None:
    y = np.array([0, 2, 0, 3, 0, 0, 2, 0, 1, 0] * 4 + [0] * 30, dtype=float)
    got = intermittent.rates(y)
    assert got["tsb"][0] < 0.25 * got["croston"][0]  # Croston keeps the old rate
    assert got["tsb"][0] < 0.1


def test_tsb_recovers_a_planted_demand_rate() -> None:
    frame = planted_mixture(80, 156, "weekly", seed=4)
    rates = [
        intermittent.rates(g["y"].to_numpy(float))["tsb"][0]
        for _, g in frame[frame["pattern"] == "intermittent"].groupby("product_id")
    ]
    assert len(rates) == 20
    assert np.mean(rates) == pytest.approx(0.3, abs=0.05)  # planted Poisson mean 0.3


def test_intermittent_series_is_served_tsb_with_croston_and_sba_in_the_backtest() -> None:
    spec = ForecastSpec(horizon=6, backtest_folds=2, backtest_horizon=4)
    out = forecast_product(_frame([0, 0, 0, 3, 0, 0, 0, 0, 1, 0] * 6), spec, ORIGIN)
    status = out[out["kind"] == "status"].iloc[0]
    assert (status["status"], status["model"]) == ("ok", "tsb")
    assert status["model_order"].startswith("tsb(alpha_size=")
    assert status["reason"] == (
        "intermittent: 80% zero; tsb served (croston, sba compared in the backtest)"
    )
    fc = out[out["kind"] == "forecast"]
    assert len(fc) == 12 and (fc["yhat"] > 0).all()
    assert (fc["yhat_lower"] <= fc["yhat"]).all() and (fc["yhat"] <= fc["yhat_upper"]).all()
    metric = out[(out["kind"] == "metric") & (out["horizon"] == "all") & (out["level"] == 0.8)]
    by_method = metric.set_index("method")
    assert set(by_method.index) == {"model", "croston", "sba", "tsb", "seasonal_naive"}
    assert by_method.loc["model", "sum_abs_error"] == by_method.loc["tsb", "sum_abs_error"]
    assert by_method.loc["sba", "sum_error"] <= by_method.loc["croston", "sum_error"]
