"""The per-product forecaster as plain pandas: good and awkward series, limits, output contract."""

from __future__ import annotations

import time
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from salesopt.forecast import families
from salesopt.forecast.model import OUTPUT_COLUMNS, ForecastSpec, forecast_product
from salesopt.forecast.synthetic import planted_series

ORIGIN = date(2024, 12, 30)
SPEC = ForecastSpec(frequency="weekly", horizon=6, backtest_folds=2, backtest_horizon=4)


def _series(values, pid: str = "P1") -> pd.DataFrame:
    n = len(values)
    ds = [ORIGIN - timedelta(days=7 * (n - 1 - i)) for i in range(n)]
    return pd.DataFrame({"product_id": pid, "ds": ds, "y": np.asarray(values, dtype=float)})


def _run(values, spec: ForecastSpec = SPEC) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    out = forecast_product(_series(values), spec, ORIGIN)
    assert list(out.columns) == OUTPUT_COLUMNS
    status = out[out["kind"] == "status"]
    assert len(status) == 1
    return status.iloc[0], out[out["kind"] == "forecast"], out[out["kind"] == "metric"]


def _assert_intervals_ordered(fc: pd.DataFrame) -> None:
    assert (fc["yhat_lower"] <= fc["yhat"]).all()
    assert (fc["yhat"] <= fc["yhat_upper"]).all()
    assert (fc["yhat_lower"] >= 0).all()


def test_good_series_gets_the_combination_with_ordered_intervals() -> None:
    y = planted_series(1, 104, "weekly", seed=11)["y"].to_numpy()
    status, fc, metric = _run(y)
    assert status["status"] == "ok" and status["model"] == "combination"
    assert status["reason"] == "mean of arima, ets, theta"
    order = status["model_order"].split(" + ")
    assert len(order) == 3 and "K=" in order[0] and order[1].startswith("ETS(A,")
    assert order[2].startswith("Theta") and np.isfinite(status["aicc"])
    assert status["n_obs"] == 104
    assert len(fc) == 6 * 2
    assert fc.loc[fc["step"] == 1, "ds"].tolist() == [ORIGIN + timedelta(days=7)] * 2
    _assert_intervals_ordered(fc)
    wide = fc[fc["level"] == 0.95].set_index("step")
    narrow = fc[fc["level"] == 0.8].set_index("step")
    assert (wide["yhat_upper"] >= narrow["yhat_upper"]).all()
    assert set(metric["method"]) == {"model", "arima", "ets", "theta", "seasonal_naive"}
    points = metric[metric["level"] == 0.8].set_index(["method", "horizon"])["n_points"]
    assert (points.xs("all", level="horizon") == 8).all()  # 2 folds x backtest_horizon 4
    assert (points.xs("1-4", level="horizon") == 8).all()
    assert set(metric["horizon"]) == {"all", "1-4"}


@pytest.mark.parametrize(
    ("values", "model", "reason"),
    [
        ([4.0] * 10, "mean", "too short: 10 < min_obs 16"),
        ([7.0] * 60, "mean", "constant"),
        ([0.0] * 60, "zero", "all zero"),
    ],
)
def test_awkward_series_fall_back_with_a_reason(values, model: str, reason: str) -> None:
    status, fc, _ = _run(values)
    assert status["status"] == "fallback"
    assert status["model"] == model
    assert status["reason"] == reason
    assert len(fc) == 12
    _assert_intervals_ordered(fc)


def test_product_without_complete_period_gets_a_zero_forecast() -> None:
    sentinel = pd.DataFrame({"product_id": ["NEW"], "ds": [None], "y": [None]})
    out = forecast_product(sentinel, SPEC, ORIGIN)
    status = out[out["kind"] == "status"].iloc[0]
    assert (status["model"], status["reason"], status["n_obs"]) == (
        "zero",
        "no complete period of history",
        0,
    )
    assert (out.loc[out["kind"] == "forecast", "yhat"] == 0).all()


def test_constant_series_forecasts_the_constant() -> None:
    _, fc, _ = _run([7.0] * 60)
    assert np.allclose(fc["yhat"], 7.0) and np.allclose(fc["yhat_upper"], 7.0)


def test_nan_values_are_interpolated_and_reported() -> None:
    y = planted_series(1, 80, "weekly", seed=2)["y"].to_numpy()
    y[[10, 11, 40]] = np.nan
    status, fc, _ = _run(y)
    assert status["status"] in {"ok", "fallback"}
    assert "3 missing values interpolated" in status["reason"]
    assert fc["yhat"].notna().all()
    _assert_intervals_ordered(fc)


def test_exploding_forecast_falls_back_to_seasonal_naive() -> None:
    y = np.exp(np.linspace(0.0, 9.0, 80))  # e^9 growth: the ARIMA extrapolates past the bound
    spec = ForecastSpec(horizon=26, backtest_folds=0, explode_factor=1.5)
    status, fc, _ = _run(y, spec)
    assert status["model"] == "seasonal_naive"
    assert "arima forecast beyond" in status["reason"]
    assert "theta forecast beyond" in status["reason"]
    assert fc["yhat"].max() <= y.max()


def test_time_limit_stops_a_slow_series_and_falls_back(monkeypatch) -> None:
    def slow(*args, **kwargs):
        time.sleep(5)
        raise AssertionError("the time limit did not interrupt the search")

    monkeypatch.setattr(families, "select", slow)
    y = planted_series(1, 80, "weekly", seed=3)["y"].to_numpy()
    spec = ForecastSpec(time_limit_s=0.3, backtest_folds=0)
    started = time.monotonic()
    status, fc, _ = _run(y, spec)
    assert time.monotonic() - started < 3
    assert status["status"] == "fallback"
    assert status["reason"] == "time limit 0.3s exceeded"
    assert status["model"] == "seasonal_naive"
    assert len(fc) == 16


def test_unexpected_error_is_a_failed_status_without_forecast(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("salesopt.forecast.model.choose", broken)
    status, fc, _ = _run([1.0, 2.0, 3.0] * 10)
    assert status["status"] == "failed"
    assert status["reason"] == "RuntimeError: boom"
    assert fc.empty


def test_fixed_order_is_respected() -> None:
    y = planted_series(1, 104, "weekly", seed=4)["y"].to_numpy()
    status, _, _ = _run(y, ForecastSpec(order=(1, 1, 0), backtest_folds=0))
    assert status["model_order"].startswith("(1,1,0)")


def test_monthly_series_uses_a_seasonal_arima() -> None:
    frame = planted_series(1, 120, "monthly", seed=6)
    spec = ForecastSpec(frequency="monthly", horizon=12, backtest_folds=0)
    out = forecast_product(frame, spec, frame["ds"].max())
    status = out[out["kind"] == "status"].iloc[0]
    assert status["model"] == "combination" and "[12] + ETS(A," in status["model_order"]
    assert out.loc[out["kind"] == "forecast", "ds"].min() == date(
        2032, 2, 1
    )  # the month after the last observation


def test_median_mase_beats_the_seasonal_naive_on_planted_series() -> None:
    frame = planted_series(8, 104, "weekly", seed=21)
    spec = ForecastSpec(backtest_folds=2, backtest_horizon=8)
    out = pd.concat(forecast_product(g, spec, ORIGIN) for _, g in frame.groupby("product_id"))
    m = out[(out["kind"] == "metric") & (out["level"] == 0.8)]
    mase = (m["sum_scaled_error"] / m["n_scaled"]).groupby(m["method"]).median()
    assert mase["model"] < mase["seasonal_naive"]
