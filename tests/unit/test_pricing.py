"""Price suggestions: hand-computed optima, guardrails and blocking reasons (pure pandas)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from salesopt.config import OptimizeSettings
from salesopt.optimize.pricing import (
    RECOMMENDATION_FIELDS,
    PriceRules,
    candidate_prices,
    recommend_prices,
)

RULES = PriceRules.from_settings(OptimizeSettings())  # +/-10 %, margin 5 %, range (-6, -0.2)


def one(rules: PriceRules = RULES, **kw: object) -> pd.Series:
    row = {
        "product_id": "P1",
        "current_price": 10.0,
        "units_per_week": 100.0,
        "unit_cost": 6.0,
        "elasticity": -3.0,
        "ci_low": -3.5,
        "ci_high": -2.5,
        "status": "ok",
    }
    row.update(kw)
    out = recommend_prices(pd.DataFrame([row]), rules)
    assert list(out.columns) == [name for name, _ in RECOMMENDATION_FIELDS]
    return out.iloc[0]


def test_interior_optimum_matches_the_closed_form() -> None:
    # constant elasticity e: p* = cost * e / (1 + e) = 6 * 3 / 2 = 9.00, inside [9, 11]
    rec = one()
    assert rec["reason"] == "optimised"
    assert rec["suggested_price"] == pytest.approx(9.0)
    assert rec["change_pct"] == pytest.approx(-10.0)
    units = 100 * 0.9**-3  # 137.174
    assert rec["expected_units_suggested"] == pytest.approx(units)
    assert rec["expected_revenue_suggested"] == pytest.approx(9.0 * units)
    assert rec["expected_margin_suggested"] == pytest.approx(3.0 * units)  # 411.52
    assert rec["expected_margin_current"] == pytest.approx(400.0)
    assert rec["expected_revenue_current"] == pytest.approx(1000.0)
    assert rec["binding_constraint"] == "none"  # the optimum itself is allowed


def test_expected_change_has_a_range_from_the_elasticity_interval() -> None:
    rec = one()  # 10.00 -> 9.00 at e = -3, interval (-3.5, -2.5)
    assert rec["expected_units_change"] == pytest.approx(100 * 0.9**-3 - 100)
    assert rec["expected_units_change_low"] == pytest.approx(100 * 0.9**-2.5 - 100)
    assert rec["expected_units_change_high"] == pytest.approx(100 * 0.9**-3.5 - 100)
    margin = [3.0 * 100 * 0.9**e - 400.0 for e in (-2.5, -3.5)]
    assert rec["expected_margin_change_low"] == pytest.approx(min(margin))
    assert rec["expected_margin_change_high"] == pytest.approx(max(margin))
    assert rec["expected_margin_change"] == pytest.approx(411.5226 - 400.0, abs=1e-3)
    revenue = [9.0 * 100 * 0.9**e - 1000.0 for e in (-2.5, -3.5)]
    assert rec["expected_revenue_change_low"] == pytest.approx(min(revenue))
    assert rec["elasticity_ci_low"] == -3.5


def test_a_kept_price_expects_no_change() -> None:
    rec = one(unit_cost=5.0, elasticity=-2.0, ci_low=-2.4, ci_high=-1.6)
    assert rec["reason"] == "current_is_best"
    assert rec["expected_margin_change"] == 0.0
    assert rec["expected_margin_change_low"] == 0.0 == rec["expected_margin_change_high"]


def test_current_price_already_optimal_is_kept() -> None:
    # e = -2, cost 5: p* = 5 * 2 / 1 = 10 = current price
    rec = one(unit_cost=5.0, elasticity=-2.0)
    assert rec["reason"] == "current_is_best"
    assert rec["suggested_price"] == 10.0
    assert rec["expected_units_suggested"] == 100.0


def test_inelastic_demand_moves_by_at_most_the_max_change() -> None:
    # -1 < e < 0: margin grows with price, so the top of the +10 % band wins
    rec = one(elasticity=-0.5)
    assert rec["suggested_price"] == pytest.approx(11.0)
    assert rec["binding_constraint"] == "max_increase"
    assert rec["expected_units_suggested"] == pytest.approx(100 * 1.1**-0.5)


def test_floor_at_cost_plus_margin_binds() -> None:
    rules = PriceRules(0.10, 0.30, -6.0, -0.2, 41)
    # cost 8, e = -5: p* = 8 * 5 / 4 = 10.0 < floor 8 * 1.3 = 10.40, so the floor wins
    rec = one(rules, unit_cost=8.0, elasticity=-5.0)
    assert rec["price_floor"] == pytest.approx(10.4)
    assert rec["suggested_price"] == pytest.approx(10.4)
    assert rec["binding_constraint"] == "margin_floor"


def test_band_entirely_below_floor_takes_the_largest_allowed_step() -> None:
    rules = PriceRules(0.10, 0.20, -6.0, -0.2, 41)
    assert list(candidate_prices(10.0, 12.0, rules)) == [11.0]
    rec = one(rules, unit_cost=10.0, elasticity=-1.5)
    assert rec["suggested_price"] == pytest.approx(11.0)
    assert rec["binding_constraint"] == "max_increase"  # toward the floor, by the cap


def test_candidates_stay_in_band_and_above_floor() -> None:
    prices = candidate_prices(10.0, 9.5, RULES)
    assert prices.min() == pytest.approx(9.5)
    assert prices.max() == pytest.approx(11.0)
    assert 10.0 in prices


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"status": "insufficient_variation", "elasticity": None},
            "elasticity_insufficient_variation",
        ),
        ({"status": "too_few_obs", "elasticity": None}, "elasticity_too_few_obs"),
        ({"ci_high": 0.3}, "elasticity_ci_spans_zero"),
        ({"ci_high": None}, "elasticity_ci_spans_zero"),
        ({"elasticity": -8.0}, "elasticity_out_of_range"),
        ({"elasticity": 0.4}, "elasticity_out_of_range"),
        ({"units_per_week": 0.0}, "no_recent_sales"),
        ({"current_price": None}, "no_recent_sales"),
        ({"unit_cost": None}, "no_unit_cost"),
    ],
)
def test_guardrails_keep_the_current_price(change: dict, reason: str) -> None:
    rec = one(**change)
    assert rec["reason"] == reason
    if not math.isnan(rec["current_price"]):
        assert rec["suggested_price"] == rec["current_price"]
        assert rec["change_pct"] == 0.0


def test_a_large_cut_is_held_by_the_lower_cap() -> None:
    # cost 2, e = -3: p* = 2 * 3 / 2 = 3.00, far below the band [9, 11] and the floor 2.10
    rec = one(unit_cost=2.0)
    assert rec["suggested_price"] == pytest.approx(9.0)
    assert rec["binding_constraint"] == "max_decrease"


def test_blocked_products_have_no_binding_constraint() -> None:
    rec = one(ci_high=0.3)
    assert rec["binding_constraint"] is None
    assert math.isnan(rec["expected_margin_change"])


def test_a_floor_above_the_band_binds_through_the_upper_cap() -> None:
    # cost 9, e = -6: p* = 9 * 6 / 5 = 10.80 is inside [9, 11], but the floor 9 * 1.3 = 11.70
    # is above the band: the price takes the largest step up, held by the cap
    rules = PriceRules(0.10, 0.30, -6.0, -0.2, 41)
    rec = one(rules, unit_cost=9.0, elasticity=-6.0)
    assert rec["suggested_price"] == pytest.approx(11.0)
    assert rec["binding_constraint"] == "max_increase"
