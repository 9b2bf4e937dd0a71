"""The per-product elasticity regression on plain pandas frames (no Spark)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from salesopt.optimize.elasticity import ELASTICITY_SCHEMA, ElasticityParams, fit_elasticity

PARAMS = ElasticityParams(min_obs=60, min_price_cv=0.02, min_distinct_prices=3)


def planted(elasticity: float, days: int = 400, seed: int = 1) -> pd.DataFrame:
    """Daily units with a planted price elasticity, promotion lift, weekday pattern and trend."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=days, freq="D")
    regime = rng.choice([0.9, 0.95, 1.0, 1.05, 1.1], size=days // 28 + 1).repeat(28)[:days]
    promo = (rng.random(days) < 0.1).astype(float)
    price = 5.0 * regime * (1 - 0.2 * promo)
    traffic = 1000 * np.exp(0.2 * rng.standard_normal(days))
    log_units = (
        2.0
        + elasticity * np.log(price)
        + np.log(1.15) * promo
        + 0.2 * (dates.dayofweek.to_numpy() == 5)
        + 0.1 * np.arange(days) / 365
        + 0.8 * np.log(traffic)
        + 0.05 * rng.standard_normal(days)
    )
    return pd.DataFrame(
        {
            "product_id": "P1",
            "date": dates.date,
            "units": np.exp(log_units),
            "price": price,
            "promo": promo,
            "traffic": traffic,
        }
    )


def test_recovers_planted_elasticity_with_controls() -> None:
    out = fit_elasticity(planted(-1.8), PARAMS)
    assert list(out.columns) == ELASTICITY_SCHEMA.fieldNames()
    row = out.iloc[0]
    assert row["status"] == "ok"
    assert row["elasticity"] == pytest.approx(-1.8, abs=0.1)
    assert 0 < row["std_error"] < 0.1
    assert row["p_value"] < 1e-6
    assert row["n_obs"] == 400


def test_zero_and_negative_days_are_dropped_before_the_log() -> None:
    obs = planted(-1.2)
    obs.loc[obs.index[:30], "units"] = 0.0
    obs.loc[obs.index[30:35], "units"] = -2.0
    row = fit_elasticity(obs, PARAMS).iloc[0]
    assert row["status"] == "ok"
    assert row["n_obs"] == 365
    assert row["elasticity"] == pytest.approx(-1.2, abs=0.15)


def test_constant_price_is_insufficient_variation() -> None:
    obs = planted(-1.5).assign(price=4.99)
    row = fit_elasticity(obs, PARAMS).iloc[0]
    assert row["status"] == "insufficient_variation"
    assert pd.isna(row["elasticity"])
    assert row["n_prices"] == 1
    assert row["price_cv"] == pytest.approx(0.0, abs=1e-12)


def test_two_distinct_prices_are_insufficient_even_with_a_large_cv() -> None:
    obs = planted(-1.5)
    obs["price"] = np.where(np.arange(len(obs)) % 2 == 0, 4.0, 5.0)
    row = fit_elasticity(obs, PARAMS).iloc[0]
    assert row["price_cv"] > 0.1
    assert row["n_prices"] == 2
    assert row["status"] == "insufficient_variation"


def test_too_few_days_with_sales() -> None:
    row = fit_elasticity(planted(-1.5, days=40), PARAMS).iloc[0]
    assert row["status"] == "too_few_obs"
    assert row["n_obs"] == 40
    assert row["message"] == "40 days with sales < min_obs 60"


def test_short_history_drops_the_yearly_terms_and_still_fits() -> None:
    row = fit_elasticity(planted(-2.0, days=200), PARAMS).iloc[0]
    assert row["status"] == "ok"
    assert row["elasticity"] == pytest.approx(-2.0, abs=0.15)


def test_promotions_alone_are_not_enough_price_variation() -> None:
    """Shelf price fixed, 10 % of days on a 20 % promotion: the promo dummy absorbs those cuts."""
    obs = planted(-1.5)
    obs["price"] = 5.0 * (1 - 0.2 * obs["promo"])
    row = fit_elasticity(obs, PARAMS).iloc[0]
    assert row["status"] == "insufficient_variation"
    assert row["price_cv"] == pytest.approx(0.0)
    assert pd.isna(row["elasticity"])


def test_price_cv_is_measured_on_regular_days() -> None:
    obs = planted(-1.5)
    regular = obs.loc[obs["promo"] == 0, "price"]
    row = fit_elasticity(obs, PARAMS).iloc[0]
    assert row["status"] == "ok"
    assert row["price_cv"] == pytest.approx(regular.std(ddof=0) / regular.mean())
