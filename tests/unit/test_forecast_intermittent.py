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


def test_sba_deflates_croston_by_half_its_interval_constant() -> None:
    y = np.array([0.0, 2.0, 0.0, 0.0, 4.0])
    mse, rate = intermittent._croston(y, 0.5, 0.5, sba=True)  # forecasts 0.75 x Croston's
    assert (mse, rate) == pytest.approx(((0.75**2 * 2 + 3.25**2) / 3.0, 0.75 * 1.2))
    rng = np.random.default_rng(8)
    y = (rng.random(48) < 0.3) * rng.integers(1, 6, 48).astype(float)
    got = intermittent.rates(y)
    grid = [(a, b) for a in intermittent.GRID for b in intermittent.GRID]
    # each method's constants minimise its own one-step errors; here SBA's differ from Croston's
    croston = min(grid, key=lambda g: intermittent._croston(y, *g)[0])
    a, b = min(grid, key=lambda g: intermittent._croston(y, *g, sba=True)[0])
    assert (a, b) != croston and a != b
    assert got["croston"][1] == "croston(alpha_size={:g}, alpha_interval={:g})".format(*croston)
    assert got["sba"][1] == f"sba(alpha_size={a:g}, alpha_interval={b:g})"
    assert got["sba"][0] == pytest.approx((1.0 - b / 2.0) * intermittent._croston(y, a, b)[1])


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


def _all_rows(out: pd.DataFrame) -> pd.DataFrame:
    m = out[(out["kind"] == "metric") & (out["horizon"] == "all") & (out["level"] == 0.8)]
    return m.set_index("method")


def test_backtest_folds_keep_the_whole_history_decision_for_a_fading_product() -> None:
    rng = np.random.default_rng(2)
    y = np.concatenate([rng.poisson(6.0, 47), np.zeros(53)])  # sold, then stopped
    assert np.mean(y == 0) > 0.5 and np.mean(y[:92] == 0) < 0.5  # no fold's part intermittent
    spec = ForecastSpec(horizon=8, backtest_folds=3)
    out = forecast_product(_frame(y), spec, ORIGIN)
    assert out[out["kind"] == "status"].iloc[0]["model"] == "tsb"
    rows = _all_rows(out)
    # every fold's training part is mostly sales, yet each fold serves TSB as the product does,
    # with Croston and SBA beside it (not the served forecast copied into their rows)
    assert rows.loc["model", "sum_abs_error"] == rows.loc["tsb", "sum_abs_error"]
    assert rows.loc[["croston", "sba", "tsb"], "sum_abs_error"].nunique() == 3


def test_backtest_folds_keep_the_families_for_a_product_that_ramped_up() -> None:
    rng = np.random.default_rng(3)
    y = np.concatenate([np.zeros(50), rng.poisson(20.0, 54)])  # launched late, sells well now
    y[[10, 30]] = 1.0
    spec = ForecastSpec(horizon=8, backtest_folds=3)
    out = forecast_product(_frame(y), spec, ORIGIN)
    assert out[out["kind"] == "status"].iloc[0]["model"] == "combination"
    rows = _all_rows(out)
    assert {"arima", "ets", "theta"} <= set(rows.index)
    assert not {"croston", "sba", "tsb"} & set(rows.index)
    # the folds serve the families' mean, not TSB copied into every family's row
    errors = rows.loc[["model", "arima", "ets", "theta"], "sum_abs_error"]
    assert errors.nunique() == 4
