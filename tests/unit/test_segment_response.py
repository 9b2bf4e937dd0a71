"""The segment price/promotion response recovers planted values, and refuses what data cannot
support (pure pandas: salesopt.strategy.response.fit_price_response)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from salesopt.strategy.response import (
    LIFT,
    PRICE,
    UPLIFT,
    ResponseParams,
    fit_price_response,
    wilson,
)

PARAMS = ResponseParams(
    min_obs=100, min_products=5, min_price_cv=0.02, min_promo_weeks=20, level=0.95
)


def planted(
    elasticity: float, lift: float, seed: int, products: int = 30, weeks: int = 104,
    base_units: float = 4.0, promo_share: float = 0.08, volatility: float = 0.15,
) -> pd.DataFrame:  # fmt: skip
    """A segment's product-weeks: shelf prices in regimes, promotions 15-25 % off, Poisson units
    with the planted elasticity and lift (beyond the price cut), zeros included."""
    rng = np.random.default_rng(seed)
    rows = []
    starts = [date(2024, 1, 1) + timedelta(weeks=w) for w in range(weeks)]
    orders = 200 * np.exp(0.1 * rng.standard_normal(weeks))
    for p in range(products):
        base = float(np.exp(rng.normal(np.log(5), 0.5)))
        level = float(np.exp(rng.normal(np.log(base_units), 0.7)))
        regimes = rng.choice([-1, -0.5, 0, 0, 0.5, 1], size=weeks // 8 + 1)
        for w, week in enumerate(starts):
            shelf = base * (1 + volatility * regimes[w // 8])
            promo = rng.random() < promo_share
            depth = rng.uniform(0.15, 0.25) if promo else 0.0
            price = shelf * (1 - depth)
            mean = level * (price / base) ** elasticity * (lift if promo else 1.0)
            mean *= orders[w] / 200
            rows.append(
                (1, f"P{p:03d}", week, float(rng.poisson(mean)), price, shelf, float(promo),
                 float(orders[w]))
            )  # fmt: skip
    columns = [
        "segment_id",
        "product_id",
        "week_start",
        "units",
        "price",
        "shelf",
        "promo",
        "orders",
    ]
    return pd.DataFrame(rows, columns=columns)


def _by_metric(frame: pd.DataFrame) -> dict[str, pd.Series]:
    return {row["metric"]: row for _, row in frame.iterrows()}


@pytest.mark.parametrize(("elasticity", "lift"), [(-0.6, 1.05), (-1.5, 1.3), (-2.8, 1.6)])
def test_planted_elasticity_and_lift_are_recovered(elasticity: float, lift: float) -> None:
    """Four samples of each planted pair: each estimate within 3 standard errors, their mean
    close (no bias)."""
    found, lifts = [], []
    for seed in range(1, 5):
        rows = _by_metric(fit_price_response(planted(elasticity, lift, seed), PARAMS))
        e, lifted, uplift = rows[PRICE], rows[LIFT], rows[UPLIFT]
        assert e["status"] == "ok" and lifted["status"] == "ok" and uplift["status"] == "ok"
        assert abs(e["estimate"] - elasticity) < 3 * e["std_error"], e["estimate"]
        # std_error of the lift is on the log scale
        assert abs(np.log(lifted["estimate"] / lift)) < 3 * lifted["std_error"], lifted["estimate"]
        found.append(e["estimate"])
        lifts.append(lifted["estimate"])
        # a typical promotion (~20 % off) with the price cut: lift x 0.8^elasticity - 1
        expected = lift * 0.8**elasticity - 1
        assert uplift["ci_low"] - 0.05 <= expected <= uplift["ci_high"] + 0.05
        assert "typical depth 2" in uplift["message"]
    assert abs(np.mean(found) - elasticity) < 0.12, found
    assert abs(np.mean(lifts) - lift) < 0.08, lifts


def test_weeks_without_a_purchase_do_not_bias_a_small_segment() -> None:
    """About half the product-weeks sell nothing: a log-log fit on sold weeks alone is pulled
    toward zero; the Poisson fit keeps the zeros."""
    estimates = []
    for seed in range(5, 10):
        obs = planted(-2.0, 1.2, seed=seed, base_units=0.5)
        assert (obs["units"] == 0).mean() > 0.5
        e = _by_metric(fit_price_response(obs, PARAMS))[PRICE]
        assert e["status"] == "ok" and abs(e["estimate"] + 2.0) < 3 * e["std_error"]
        estimates.append(e["estimate"])
    assert abs(np.mean(estimates) + 2.0) < 0.15, estimates  # unbiased over samples


def test_too_few_purchases_refuse_every_estimate() -> None:
    obs = planted(-1.5, 1.3, seed=6, products=4, weeks=20)
    rows = _by_metric(fit_price_response(obs, PARAMS))
    assert rows[PRICE]["status"] == "too_few_obs"
    assert "over 4 products" in rows[PRICE]["message"]
    assert pd.isna(rows[PRICE]["estimate"])
    assert {rows[LIFT]["status"], rows[UPLIFT]["status"]} <= {"too_few_obs", "no_promotions"}


def test_a_fixed_shelf_price_is_insufficient_variation() -> None:
    obs = planted(-1.5, 1.3, seed=7, volatility=0.0)
    rows = _by_metric(fit_price_response(obs, PARAMS))
    assert rows[PRICE]["status"] == "insufficient_variation"
    assert rows[PRICE]["estimate"] is None


def test_without_promotions_the_elasticity_stands_and_the_lift_is_refused() -> None:
    obs = planted(-1.5, 1.3, seed=8, promo_share=0.0)
    rows = _by_metric(fit_price_response(obs, PARAMS))
    assert rows[PRICE]["status"] == "ok"
    assert rows[LIFT]["status"] == rows[UPLIFT]["status"] == "no_promotions"
    assert rows[LIFT]["message"].startswith("0 product-weeks on promotion")


def test_wilson_interval_holds_the_share() -> None:
    low, high = wilson(30, 100, 0.95)
    assert 0.2 < low < 0.3 < high < 0.4
    assert wilson(0, 50, 0.95)[0] < 1e-12
