"""The per-product elasticity regression and its shrinkage on plain pandas frames (no Spark).

`panel` plants what makes real scanner data hard: heavy-tailed store sizes, store-level price
changes, promotions that coincide with price cuts and lift demand beyond the price effect
(display, advertising), and monthly seasonality.
"""

from __future__ import annotations

from datetime import date, timedelta
from statistics import median

import numpy as np
import pandas as pd
import pytest

from salesopt.optimize.elasticity import (
    ALL_LOCATIONS,
    ELASTICITY_SCHEMA,
    FIT_SCHEMA,
    OTHER_LOCATIONS,
    ElasticityParams,
    fit_elasticity,
    merge_sparse,
    shrink,
    sparse_locations,
)

PARAMS = ElasticityParams(min_obs=40, min_price_cv=0.02, min_distinct_prices=3)
PROMO_LIFT = 0.6  # log units: a promotion's effect beyond its price cut
FIRST_MONDAY = date(2024, 1, 1)


def panel(
    elasticity: float,
    seed: int,
    stores: int = 25,
    weeks: int = 104,
    product: str = "P1",
    store_price_sd: float = 0.03,
) -> pd.DataFrame:
    """Store-weeks (OBS_COLUMNS) of one product with a planted elasticity; Poisson units."""
    rng = np.random.default_rng(seed)
    size = np.exp(rng.normal(0.0, 1.0, stores))  # heavy-tailed: the biggest ~10x the median
    chain_regime = rng.choice([0.9, 0.95, 1.0, 1.05, 1.1], size=weeks // 8 + 1).repeat(8)[:weeks]
    promo_weeks = rng.random(weeks) < 0.12
    depth = rng.uniform(0.2, 0.3, weeks)
    rows = []
    for s in range(stores):
        store_regime = np.exp(rng.normal(0.0, store_price_sd, weeks // 13 + 1).repeat(13)[:weeks])
        shelf = 4.0 * chain_regime * store_regime
        price = shelf * np.where(promo_weeks, 1 - depth, 1.0)
        week_start = [FIRST_MONDAY + timedelta(weeks=w) for w in range(weeks)]
        season = 0.2 * np.sin(2 * np.pi * np.array([d.month for d in week_start]) / 12)
        mean = (
            size[s]
            * 60
            * np.exp(elasticity * np.log(price / 4.0) + PROMO_LIFT * promo_weeks + season)
        )
        units = rng.poisson(mean)
        rows.append(
            pd.DataFrame(
                {
                    "product_id": product,
                    "location": f"S{s:02d}",
                    "week_start": week_start,
                    "units": units.astype(float),
                    "price": np.round(price, 2),
                    "promo": promo_weeks.astype(float),
                }
            )
        )
    out = pd.concat(rows, ignore_index=True)
    return out[out["units"] > 0].reset_index(drop=True)


def pooled(obs: pd.DataFrame, promo_control: bool = True) -> pd.DataFrame:
    """All stores summed into one weekly series (the form without store_id)."""
    revenue = obs["price"] * obs["units"]
    summed = (
        obs.assign(_rev=revenue, _promo=obs["promo"] * obs["units"])
        .groupby(["product_id", "week_start"], as_index=False)[["units", "_rev", "_promo"]]
        .sum()
    )
    return summed.assign(
        location=ALL_LOCATIONS,
        price=summed["_rev"] / summed["units"],
        promo=summed["_promo"] / summed["units"] if promo_control else 0.0,
    )[["product_id", "location", "week_start", "units", "price", "promo"]]


def estimate(obs: pd.DataFrame) -> pd.Series:
    out = fit_elasticity(obs, PARAMS)
    assert list(out.columns) == FIT_SCHEMA.fieldNames()
    return out.iloc[0]


PLANTED = [-0.8, -1.2, -1.6, -2.0, -2.5, -3.0, -1.4, -2.2]


def test_within_store_estimator_recovers_planted_elasticities() -> None:
    errors, pooled_no_promo_errors = [], []
    for i, truth in enumerate(PLANTED):
        obs = panel(truth, seed=i)
        row = estimate(obs)
        assert row["status"] == "ok", row["message"]
        assert row["specification"] == "location_fixed_effects"
        assert row["elasticity_raw"] < 0  # every sign right
        errors.append(abs(row["elasticity_raw"] - truth))
        naive = estimate(pooled(obs, promo_control=False))
        assert naive["specification"] == "pooled"
        pooled_no_promo_errors.append(abs(naive["elasticity_raw"] - truth))
    assert median(errors) <= 0.2, errors
    # the pooled form without the promotion control reads the promotion lift as price response
    assert median(pooled_no_promo_errors) >= 2 * median(errors) + 0.2, pooled_no_promo_errors


def test_the_interval_covers_the_planted_value() -> None:
    covered = 0
    for i, truth in enumerate(PLANTED):
        row = estimate(panel(truth, seed=100 + i))
        covered += abs(row["elasticity_raw"] - truth) <= 1.96 * row["std_error_raw"]
    assert covered >= len(PLANTED) - 1


def test_a_quantity_cap_does_not_flip_the_within_store_estimate() -> None:
    """What a quantity cap does to the input: it drops the biggest store-weeks, the low-price
    and promotion weeks of the big stores. Within stores (and with partly capped stores summed
    into one) the estimate keeps its sign and stays near the full-data one; the stage still
    refuses a product with more than max_quarantined_share of its lines quarantined."""
    obs = panel(-2.0, seed=7)
    full = estimate(obs)["elasticity_raw"]
    for q in (0.5, 0.7, 0.9):
        capped = estimate(obs[obs["units"] <= obs["units"].quantile(q)])
        assert capped["status"] == "ok"
        assert capped["elasticity_raw"] == pytest.approx(full, abs=0.35), q


def test_pooled_form_when_there_is_one_location() -> None:
    row = estimate(pooled(panel(-1.5, seed=3)))
    assert row["status"] == "ok"
    assert row["specification"] == "pooled"
    assert row["n_locations"] == 1
    assert row["elasticity_raw"] == pytest.approx(-1.5, abs=0.3)
    assert "no store_id" in row["message"]


def test_one_price_in_every_store_sums_the_stores() -> None:
    """Chain-wide prices: stores add no price variation, only small noisy weeks."""
    obs = panel(-1.8, seed=12, store_price_sd=0.0)
    row = estimate(obs)
    assert (row["specification"], row["n_locations"]) == ("summed_locations", 1)
    assert row["elasticity_raw"] == pytest.approx(-1.8, abs=0.3)
    assert "one price in all 25 locations" in row["message"]


def test_sparse_locations_are_summed_into_one() -> None:
    obs = panel(-1.5, seed=4)
    few = obs[obs["location"] == "S00"].iloc[::3].assign(location="TINY1")
    few2 = obs[obs["location"] == "S01"].iloc[::4].assign(location="TINY2")
    both_tiny = pd.concat([obs, few, few2], ignore_index=True)
    assert sorted(sparse_locations(both_tiny)) == ["TINY1", "TINY2"]
    merged = merge_sparse(both_tiny, sparse_locations(both_tiny))
    assert "TINY1" not in set(merged["location"]) and OTHER_LOCATIONS in set(merged["location"])
    other = merged[merged["location"] == OTHER_LOCATIONS]
    both = pd.concat([few, few2])
    assert other["units"].sum() == both["units"].sum()
    week = both["week_start"].iloc[0]
    in_week = both[both["week_start"] == week]
    expected = (in_week["price"] * in_week["units"]).sum() / in_week["units"].sum()
    assert other.loc[other["week_start"] == week, "price"].iloc[0] == pytest.approx(expected)


def traffic_panel(elasticity: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Store-weeks whose demand follows store traffic (orders), which is high in the weeks the
    chain raises prices (a holiday season priced up): price and demand move together."""
    rng = np.random.default_rng(seed)
    stores, weeks = 20, 104
    regime = rng.choice([0.9, 1.0, 1.1], size=weeks // 8 + 1).repeat(8)[:weeks]
    shock = 3.0 * np.log(regime) + rng.normal(0, 0.05, weeks)  # traffic up when price is up
    week_start = [FIRST_MONDAY + timedelta(weeks=w) for w in range(weeks)]
    obs, traffic = [], []
    for s in range(stores):
        orders = 500 * np.exp(rng.normal(0, 0.5) + shock + rng.normal(0, 0.05, weeks))
        price = 4.0 * regime * np.exp(rng.normal(0, 0.02, weeks))
        units = rng.poisson(0.2 * orders * (price / 4.0) ** elasticity)
        loc = f"S{s:02d}"
        obs.append(
            pd.DataFrame(
                {
                    "product_id": "P1",
                    "location": loc,
                    "week_start": week_start,
                    "units": units.astype(float),
                    "price": price,
                    "promo": 0.0,
                }
            )
        )
        traffic.append(pd.DataFrame({"location": loc, "week_start": week_start,
                                     "traffic": np.round(orders)}))  # fmt: skip
    return pd.concat(obs, ignore_index=True), pd.concat(traffic, ignore_index=True)


def test_store_traffic_controls_for_demand_that_moves_with_price() -> None:
    obs, traffic = traffic_panel(-2.0, seed=11)
    with_control = fit_elasticity(obs, PARAMS, traffic).iloc[0]
    without = estimate(obs)
    assert with_control["elasticity_raw"] == pytest.approx(-2.0, abs=0.2)
    assert without["elasticity_raw"] > -1.0  # the traffic swing read as price response


def test_constant_price_is_insufficient_variation() -> None:
    row = estimate(panel(-1.5, seed=5).assign(price=4.99, promo=0.0))
    assert row["status"] == "insufficient_variation"
    assert pd.isna(row["elasticity_raw"])
    assert row["n_prices"] == 1
    assert row["price_cv"] == pytest.approx(0.0, abs=1e-12)


def test_promotions_alone_are_not_enough_price_variation() -> None:
    """Shelf price fixed; promotion weeks cut it: the promotion term absorbs those cuts."""
    obs = panel(-1.5, seed=6)
    obs["price"] = np.where(obs["promo"] > 0, 3.0, 4.0)
    row = estimate(obs)
    assert row["status"] == "insufficient_variation"
    assert row["price_cv"] == pytest.approx(0.0)


def test_too_few_location_weeks() -> None:
    obs = panel(-1.5, seed=8, stores=1, weeks=30)
    row = estimate(obs)
    assert row["status"] == "too_few_obs"
    assert row["message"] == f"{len(obs)} location-weeks with sales < min_obs 40"


def test_a_positive_estimate_is_implausible_not_ok() -> None:
    row = estimate(panel(1.5, seed=9))
    assert row["status"] == "implausible"
    assert row["elasticity_raw"] > 0
    assert "positive elasticity" in row["message"]


def test_few_locations_widen_the_interval_to_t() -> None:
    """Two stores, prices differing between them: the clustered standard error is widened by
    t(1) / z, so the normal interval is the t interval with G - 1 degrees of freedom."""
    obs = panel(-1.5, seed=13, stores=2, store_price_sd=0.05)
    row = estimate(obs)
    assert (row["specification"], row["n_locations"]) == ("location_fixed_effects", 2)
    assert row["std_error_raw"] > 5 * estimate(panel(-1.5, seed=13, stores=25))["std_error_raw"]


def test_all_sparse_locations_are_summed_and_say_so() -> None:
    obs = panel(-1.5, seed=14, stores=6)
    # every store sells in one week out of two, in alternating weeks: all sparse, no overlap
    weeks = sorted(obs["week_start"].unique())
    turn = {w: i % 6 for i, w in enumerate(weeks)}
    obs = obs[obs["location"].str[1:].astype(int) == obs["week_start"].map(turn)]
    row = estimate(obs)
    assert (row["specification"], row["n_locations"]) == ("summed_locations", 1)
    assert "few weeks with sales in all 6 locations" in row["message"]


def fit_rows(values: list[tuple[float, float]], status: str = "ok") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"product_id": f"P{i}", "category": "dairy", "elasticity_raw": e,
             "std_error_raw": se, "n_obs": 100, "n_locations": 5, "n_prices": 10,
             "price_cv": 0.05, "quarantined_share": 0.0, "r2": 0.5,
             "specification": "location_fixed_effects", "status": status, "message": "m"}
            for i, (e, se) in enumerate(values)
        ]
    )  # fmt: skip


def test_shrinkage_pulls_weak_estimates_toward_the_category() -> None:
    rows = fit_rows([(-2.0, 0.1), (-1.8, 0.1), (-2.2, 0.1), (-1.0, 0.1), (0.5, 2.0)])
    out = shrink(rows, level=0.95)
    assert list(out.columns) == ELASTICITY_SCHEMA.fieldNames()
    precise, weak = out.iloc[0], out.iloc[4]
    assert precise["shrinkage_weight"] > 0.9
    assert precise["elasticity"] == pytest.approx(-2.0, abs=0.05)
    assert weak["shrinkage_weight"] < 0.1  # se 2.0: the category decides
    assert weak["elasticity"] < -1.0
    assert weak["category_elasticity"] == pytest.approx(out["category_elasticity"].iloc[0])
    assert weak["ci_low"] < weak["elasticity"] < weak["ci_high"]
    assert weak["std_error"] < 2.0


def test_agreeing_estimates_still_keep_most_of_their_own_value() -> None:
    """Five estimates that agree beyond their standard errors: DerSimonian-Laird puts tau^2 at
    0, which would give every product the category's value; the floor keeps them apart."""
    out = shrink(fit_rows([(-1.9, 0.1), (-2.0, 0.1), (-2.1, 0.1), (-2.0, 0.1), (-1.95, 0.1)]),
                 level=0.95)  # fmt: skip
    assert out["shrinkage_weight"].tolist() == pytest.approx([0.25**2 / (0.25**2 + 0.01)] * 5)
    assert out["elasticity"].max() - out["elasticity"].min() > 0.15  # 0.2 apart before


def test_products_without_a_category_are_not_shrunk_together() -> None:
    rows = fit_rows([(-1.0, 0.3), (-2.0, 0.3), (-3.0, 0.3), (-4.0, 0.3), (-5.0, 0.3)])
    out = shrink(rows.assign(category="(none)"), level=0.95)
    assert out["shrinkage_weight"].tolist() == [1.0] * 5
    assert out["elasticity"].tolist() == [-1.0, -2.0, -3.0, -4.0, -5.0]


def test_shrinkage_needs_enough_products_and_skips_refused_rows() -> None:
    rows = fit_rows([(-2.0, 0.3), (-1.0, 0.3)])
    out = shrink(rows, level=0.95)
    assert out["shrinkage_weight"].tolist() == [1.0, 1.0]
    assert out["elasticity"].tolist() == [-2.0, -1.0]
    assert out["ci_high"].iloc[0] == pytest.approx(-2.0 + 1.959964 * 0.3, abs=1e-5)
    refused = shrink(fit_rows([(3.0, 0.1)] * 4, status="censored"), level=0.95)
    assert refused["elasticity"].isna().all() and refused["shrinkage_weight"].isna().all()
    assert refused["elasticity_raw"].tolist() == [3.0] * 4
