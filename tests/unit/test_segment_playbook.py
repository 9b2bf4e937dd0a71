"""The playbook's rules on hand-made segment responses: an action only with evidence, and a
reason when the evidence is missing (pure pandas: salesopt.strategy.playbook)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from salesopt.strategy.playbook import (
    NO_EVIDENCE,
    NOT_RECOMMENDED,
    RECOMMENDED,
    TRACKED,
    Economics,
    PlaybookRules,
    lift_price_cov,
    playbook,
    uplift_at,
)
from salesopt.strategy.response import RESPONSE_SCHEMA

RULES = PlaybookRules(
    min_margin=0.05, max_promo_depth=0.5, promo_depth_step=0.05, level=0.95, window_days=90
)
ECON = Economics(cost_ratio=0.5, weekly_revenue=(700.0, 70.0, 13), weekly_orders=(70.0, 7.0, 13))
REACTIVATION = (0.2, 0.15, 0.26, 400)


def response(segment_id: int = 1, **metrics: dict) -> pd.DataFrame:
    """Response rows: metric name -> column values (status ok unless given)."""
    rows = []
    for key, values in metrics.items():
        metric, _, channel = key.partition("__")
        row = {name: None for name in RESPONSE_SCHEMA.fieldNames()}
        row.update(
            segment_id=segment_id, metric=metric, channel=channel or None, status="ok", n=500
        )
        row.update(values)
        rows.append(row)
    return pd.DataFrame(rows, columns=RESPONSE_SCHEMA.fieldNames())


def profile(label: str = "high value, frequent", segment_id: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "segment_id": segment_id,
                "segment_label": label,
                "customers": 120,
                "yearly_revenue": 50000.0,
            }
        ]
    )


def actions(book: pd.DataFrame) -> dict[str, pd.Series]:
    return {row["action"]: row for _, row in book.iterrows() if row["action"] != "monitor"}


def test_inelastic_segment_keeps_full_prices_with_the_revenue_a_discount_costs() -> None:
    resp = response(
        price_elasticity={"estimate": -0.4, "std_error": 0.1, "ci_low": -0.6, "ci_high": -0.2}
    )
    book = actions(playbook(resp, profile(), {1: ECON}, REACTIVATION, RULES))
    row = book["no_discount"]
    assert row["status"] == RECOMMENDED
    # a 10 % discount at elasticity e changes revenue by 0.9^(1 + e) - 1
    assert row["effect_low"] == pytest.approx(50000 * (1 - 0.9**0.4))
    assert row["effect_high"] == pytest.approx(50000 * (1 - 0.9**0.8))


def test_elastic_or_uncertain_segments_get_no_no_discount_rule() -> None:
    elastic = response(
        price_elasticity={"estimate": -2.0, "std_error": 0.2, "ci_low": -2.4, "ci_high": -1.6}
    )
    spans = response(
        price_elasticity={"estimate": -1.0, "std_error": 0.3, "ci_low": -1.6, "ci_high": -0.4}
    )
    assert (
        actions(playbook(elastic, profile(), {1: ECON}, REACTIVATION, RULES))["no_discount"][
            "status"
        ]
        == NOT_RECOMMENDED
    )
    row = actions(playbook(spans, profile(), {1: ECON}, REACTIVATION, RULES))["no_discount"]
    assert row["status"] == NO_EVIDENCE and "spans -1" in row["reason"]


def test_missing_evidence_refuses_every_action_with_its_reason() -> None:
    resp = response(
        price_elasticity={"status": "too_few_obs", "message": "40 product-weeks", "n": 40},
        promo_lift={"status": "no_promotions", "message": "3 product-weeks on promotion < 20"},
    )
    book = actions(playbook(resp, profile(), {1: ECON}, REACTIVATION, RULES))
    assert book["no_discount"]["status"] == NO_EVIDENCE
    assert "too_few_obs: 40 product-weeks" in book["no_discount"]["reason"]
    assert book["promotion"]["status"] == NO_EVIDENCE
    assert book["channel"]["status"] == NO_EVIDENCE  # no channel rows at all
    for row in book.values():
        assert pd.isna(row["effect_low"]) and row["reason"]


def _promo_response(lift: float, lift_se: float, e: float = -1.5) -> pd.DataFrame:
    return response(
        price_elasticity={"estimate": e, "std_error": 0.1, "ci_low": e - 0.2, "ci_high": e + 0.2},
        promo_lift={"estimate": lift, "std_error": lift_se},
        promo_depth={"estimate": 0.2, "ci_low": 0.15, "ci_high": 0.25},
    )


def test_promotion_depth_is_chosen_within_seen_depths_and_on_the_pessimistic_gain() -> None:
    book = actions(playbook(_promo_response(1.6, 0.05), profile(), {1: ECON}, REACTIVATION, RULES))
    row = book["promotion"]
    assert row["status"] == RECOMMENDED
    depth = float(row["detail"].split()[2].rstrip("%")) / 100
    assert 0.15 <= depth <= 0.25  # never outside the depths promotions ran at
    # the pessimistic gain: (1 + u_low)(1 - d - c) - (1 - c) with u_low from the log-scale CI
    se = math.hypot(0.05, math.log(1 - depth) * 0.1)
    u_low = math.exp(math.log(1.6) - 1.5 * math.log(1 - depth) - 1.959964 * se) - 1
    assert row["effect_low"] == pytest.approx((1 + u_low) * (1 - depth - 0.5) - 0.5, rel=1e-4)
    assert row["effect_low"] > 0


def test_a_promotion_that_may_lose_profit_or_breaks_the_margin_floor_is_not_recommended() -> None:
    weak = actions(playbook(_promo_response(1.05, 0.08), profile(), {1: ECON}, REACTIVATION, RULES))
    assert weak["promotion"]["status"] == NOT_RECOMMENDED
    dear = Economics(
        cost_ratio=0.9, weekly_revenue=ECON.weekly_revenue, weekly_orders=ECON.weekly_orders
    )
    thin = actions(playbook(_promo_response(1.6, 0.05), profile(), {1: dear}, REACTIVATION, RULES))
    assert thin["promotion"]["status"] == NOT_RECOMMENDED
    assert "margin floor" in thin["promotion"]["reason"]


def test_channel_only_when_one_clearly_leads() -> None:
    clear = response(
        **{"channel_order_share__app": {"estimate": 0.6, "ci_low": 0.55, "ci_high": 0.65},
           "channel_order_share__web": {"estimate": 0.3, "ci_low": 0.25, "ci_high": 0.35,
                                         "previous_estimate": 0.4}}
    )  # fmt: skip
    row = actions(playbook(clear, profile(), {1: ECON}, REACTIVATION, RULES))["channel"]
    assert row["status"] == RECOMMENDED and row["detail"] == "reach through app"
    tied = response(
        **{"channel_order_share__app": {"estimate": 0.45, "ci_low": 0.38, "ci_high": 0.52},
           "channel_order_share__web": {"estimate": 0.42, "ci_low": 0.35, "ci_high": 0.49}}
    )  # fmt: skip
    row = actions(playbook(tied, profile(), {1: ECON}, REACTIVATION, RULES))["channel"]
    assert row["status"] == NO_EVIDENCE and "not told apart" in row["reason"]


def test_lapsed_segments_get_a_win_back_and_a_reactivation_kpi() -> None:
    book = playbook(response(), profile("lapsed", -3), {-3: ECON}, REACTIVATION, RULES)
    back = actions(book)["win_back"]
    assert back["status"] == RECOMMENDED and "50,000 a year at stake" in back["reason"]
    # what does not come back without an offer: at stake x (1 - base rate)
    assert (back["effect_low"], back["effect_high"]) == pytest.approx((50000 * 0.74, 50000 * 0.85))
    kpis = book[book["action"] == "monitor"].set_index("kpi")
    assert set(kpis.index) == {"revenue_per_day", "orders_per_day", "reactivation_rate"}
    assert set(kpis["status"]) == {TRACKED}
    # a week's daily rate: (mean +- z sd of weekly totals) / 7
    assert kpis.loc["revenue_per_day", "expected_low"] == pytest.approx((700 - 1.959964 * 70) / 7)
    assert kpis.loc["reactivation_rate", "expected_high"] == 0.26
    # too few customers ever inactive: no base rate, so no win-back and no reactivation KPI
    few = playbook(response(), profile("lapsed", -3), {-3: ECON}, (0.2, 0.0, 0.6, 10), RULES)
    assert actions(few)["win_back"]["status"] == NO_EVIDENCE
    assert "reactivation_rate" not in set(few["kpi"][few["action"] == "monitor"])
    # other segments get no win-back
    assert "win_back" not in actions(
        playbook(response(), profile(), {1: ECON}, REACTIVATION, RULES)
    )


def test_a_positive_or_one_channel_estimate_is_no_evidence() -> None:
    """Found on The Complete Journey: an elasticity of 0.61 [-0.83, 2.05] and one channel."""
    resp = response(
        price_elasticity={"estimate": 0.61, "std_error": 0.73, "ci_low": -0.83, "ci_high": 2.05},
        **{"channel_order_share__store": {"estimate": 1.0, "ci_low": 1.0, "ci_high": 1.0}},
    )
    book = actions(playbook(resp, profile(), {1: ECON}, REACTIVATION, RULES))
    assert book["no_discount"]["status"] == NO_EVIDENCE
    assert "positive estimate" in book["no_discount"]["reason"]
    assert book["channel"]["status"] == NO_EVIDENCE
    assert "every order comes through store" in book["channel"]["reason"]


def test_the_uplift_interval_keeps_the_fit_covariance() -> None:
    """The covariance backed out of the stored uplift reproduces its interval at the typical
    depth; promotion weeks are the low-price weeks, so it is not zero."""
    se_b, se_e, cov, depth = 0.08, 0.15, -0.006, 0.2
    cut = math.log(1 - depth)
    se_u = math.sqrt(se_b**2 + cut**2 * se_e**2 + 2 * cut * cov)
    resp = _promo_response(1.6, se_b)
    e = resp[resp["metric"] == "price_elasticity"].iloc[0].copy()
    e["std_error"] = se_e
    lift = resp[resp["metric"] == "promo_lift"].iloc[0]
    uplift = pd.Series({"status": "ok", "std_error": se_u})
    assert lift_price_cov(lift, e, uplift, depth) == pytest.approx(cov)
    centre, low, _high = uplift_at(lift, e, depth, 1.959964, cov)
    log_centre = math.log(1 + centre)
    assert math.log(1 + low) == pytest.approx(log_centre - 1.959964 * se_u)
    assert lift_price_cov(lift, e, None, depth) == 0.0  # no uplift row: taken as independent


def test_promotion_depths_off_the_grid_and_a_channel_gone_are_no_evidence() -> None:
    resp = response(
        price_elasticity={"estimate": -1.5, "std_error": 0.1, "ci_low": -1.7, "ci_high": -1.3},
        promo_lift={"estimate": 1.6, "std_error": 0.05},
        promo_depth={"estimate": 0.17, "ci_low": 0.16, "ci_high": 0.18},
        channel_order_share__store={"estimate": 1.0, "ci_low": 1.0, "ci_high": 1.0},
        channel_order_share__web={"estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0,
                                  "previous_estimate": 0.3},
    )  # fmt: skip
    book = actions(playbook(resp, profile(), {1: ECON}, REACTIVATION, RULES))
    assert book["promotion"]["status"] == NO_EVIDENCE
    assert "no 5% step of depth" in book["promotion"]["reason"]
    assert book["channel"]["status"] == NO_EVIDENCE  # web only in the window before
    assert "every order comes through store" in book["channel"]["reason"]
