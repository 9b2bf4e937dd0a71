"""The segment playbook: documented, rule-based actions from each segment's measured response.

Pure pandas: `playbook(...)` takes the segment_response rows, the segment profiles and each
segment's economics and returns PLAYBOOK_COLUMNS rows. No action without evidence: where the
numbers cannot support a rule, its row says so (`insufficient_evidence`) and why. The rules and
their thresholds are documented in docs/segmentation.md ("Strategy by segment"); keep the two in
step.

Actions (one row per segment and action; `status` recommended | not_recommended |
insufficient_evidence | tracked):
- win_back (at-risk and lapsed segments): the yearly revenue at stake, the part of it that does
  not come back without an offer, and the base reactivation rate an offer has to beat;
- no_discount: the segment's elasticity CI lies above -1 (inelastic) and its estimate is not
  positive, so a discount loses revenue; the revenue a 10 % discount would cost;
- promotion: the promotion depth, among those the segment's promotions ran at and within the
  margin floor, with the largest gross-profit gain at the lower end of its units-uplift CI;
  recommended when even that gain is above zero;
- channel: the channel with clearly the largest share of the segment's orders, and its trend
  (none when every order comes through one channel);
- monitor: the KPIs the next refreshes compare (gold/segment_kpis): revenue and orders per day,
  and for at-risk and lapsed segments the reactivation rate, each with its expected range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from salesopt.strategy.response import DEPTH, LIFT, NO_CHANNEL, ORDER_SHARE, PRICE, UPLIFT

PLAYBOOK_COLUMNS = (
    "segment_id", "segment_label", "customers", "action", "status", "detail", "reason", "kpi",
    "expected", "expected_low", "expected_high", "effect_low", "effect_high", "effect_unit",
)  # fmt: skip
CHURN_LABELS = ("at risk", "lapsed")  # the lifecycle segments a win-back offer is for
RECOMMENDED, NOT_RECOMMENDED = "recommended", "not_recommended"
NO_EVIDENCE, TRACKED = "insufficient_evidence", "tracked"
TEST_DISCOUNT = 0.10  # the across-the-board discount the no_discount rule prices
REVENUE, ORDERS, REACTIVATION = "revenue_per_day", "orders_per_day", "reactivation_rate"
# base reactivation: (rate, ci_low, ci_high, customers) as `response.reactivation_rate` returns
Reactivation = tuple[float | None, float | None, float | None, int]


@dataclass(frozen=True)
class PlaybookRules:
    min_margin: float  # margin floor after a discount (optimize.min_margin)
    max_promo_depth: float
    promo_depth_step: float
    level: float
    window_days: int  # days the reactivation rate is measured over
    min_n: int = 30  # customers behind a base reactivation rate (strategy.min_orders)


@dataclass(frozen=True)
class Economics:
    """One segment's numbers the rules need beyond its response."""

    cost_ratio: float | None  # unit cost / shelf price over the segment's lines
    weekly_revenue: tuple[float, float, int]  # mean, standard deviation, weeks
    weekly_orders: tuple[float, float, int]


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _get(response: pd.DataFrame, metric: str) -> pd.Series | None:
    found = response[(response["metric"] == metric) & response["channel"].isna()]
    return None if found.empty else found.iloc[0]


def _row(
    segment: Mapping[str, object], action: str, status: str, reason: str, **kw: object
) -> dict[str, object]:
    row: dict[str, object] = {name: kw.get(name) for name in PLAYBOOK_COLUMNS}
    row.update(
        segment_id=int(segment["segment_id"]),  # type: ignore[call-overload]
        segment_label=segment["segment_label"],
        customers=int(segment["customers"]),  # type: ignore[call-overload]
        action=action,
        status=status,
        reason=reason,
    )
    return row


def win_back(
    segment: Mapping[str, object], reactivation: Reactivation,
    rules: PlaybookRules,
) -> dict[str, object] | None:  # fmt: skip
    """At-risk and lapsed segments: the revenue at stake and the base reactivation rate."""
    if segment["segment_label"] not in CHURN_LABELS:
        return None
    at_stake = float(segment.get("yearly_revenue") or 0.0)  # type: ignore[arg-type]
    rate, low, high, n = reactivation
    if rate is None or low is None or high is None or n < rules.min_n:
        return _row(
            segment, "win_back", NO_EVIDENCE,
            f"{_money(at_stake)} a year at stake, but too few customers ({n}) were ever inactive "
            f"for {rules.window_days} days to know how many come back without an offer",
            kpi=REACTIVATION,
        )  # fmt: skip
    return _row(
        segment, "win_back", RECOMMENDED,
        f"{_money(at_stake)} a year at stake; without an offer {low:.0%}-{high:.0%} of customers "
        f"inactive {rules.window_days} days come back within {rules.window_days} days: an offer "
        "works when the reactivation rate beats that (keep a holdout group to measure it)",
        detail=f"win-back offer to {int(segment['customers']):,} customers",  # type: ignore[call-overload]
        kpi=REACTIVATION, expected=rate, expected_low=low, expected_high=high,
        effect_low=at_stake * (1 - high), effect_high=at_stake * (1 - low),
        effect_unit="revenue a year that does not come back without an offer",
    )  # fmt: skip


def no_discount(segment: Mapping[str, object], response: pd.DataFrame) -> dict[str, object]:
    """A segment whose elasticity CI lies above -1 loses revenue on every discount."""
    e = _get(response, PRICE)
    if e is None or e["status"] != "ok":
        why = "no estimate" if e is None else f"{e['status']}: {e['message']}"
        return _row(segment, "no_discount", NO_EVIDENCE, f"price elasticity {why}", kpi=REVENUE)
    est, low, high = float(e["estimate"]), float(e["ci_low"]), float(e["ci_high"])
    text = f"elasticity {est:.2f} [{low:.2f}, {high:.2f}]"
    if est > 0:
        return _row(
            segment, "no_discount", NO_EVIDENCE,
            f"{text}: a positive estimate says something other than price moves this "
            "segment's units (too little price variation, or prices set on demand)",
            kpi=REVENUE,
        )  # fmt: skip
    if low > -1:
        revenue = float(segment.get("yearly_revenue") or 0.0)  # type: ignore[arg-type]
        cost = [revenue * (1 - (1 - TEST_DISCOUNT) ** (1 + x)) for x in (low, min(high, 0.0))]
        return _row(
            segment, "no_discount", RECOMMENDED,
            f"demand barely answers price ({text}): a {TEST_DISCOUNT:.0%} discount sells a "
            "little more and earns less",
            detail="keep full prices; reward with service, not discounts", kpi=REVENUE,
            effect_low=min(cost), effect_high=max(cost),
            effect_unit=f"revenue a year a {TEST_DISCOUNT:.0%} discount would cost",
        )  # fmt: skip
    if high < -1:
        return _row(
            segment, "no_discount", NOT_RECOMMENDED,
            f"price-sensitive ({text}): price-led offers move this segment", kpi=REVENUE,
        )  # fmt: skip
    return _row(
        segment, "no_discount", NO_EVIDENCE,
        f"{text} spans -1: whether a discount gains or loses revenue cannot be told", kpi=REVENUE,
    )  # fmt: skip


def lift_price_cov(lift: pd.Series, e: pd.Series, uplift: pd.Series | None, depth: float) -> float:
    """cov(log lift, elasticity) backed out of the stored uplift at the typical depth:
    var(u) = var(b) + L^2 var(e) + 2 L cov(b, e) with L = log(1 - depth); 0 when it cannot be
    (no uplift row or a zero depth)."""
    if uplift is None or uplift["status"] != "ok" or depth <= 0 or pd.isna(uplift["std_error"]):
        return 0.0
    cut = math.log(1 - depth)
    var_u, var_b = float(uplift["std_error"]) ** 2, float(lift["std_error"]) ** 2
    return (var_u - var_b - cut**2 * float(e["std_error"]) ** 2) / (2 * cut)


def uplift_at(
    lift: pd.Series, e: pd.Series, depth: float, z: float, cov: float = 0.0
) -> tuple[float, float, float]:
    """Units uplift (share) of a promotion at `depth`, with an interval from the log-scale
    standard errors of lift and elasticity and their covariance."""
    cut = math.log(1 - depth)
    centre = math.log(float(lift["estimate"])) + float(e["estimate"]) * cut
    var = float(lift["std_error"]) ** 2 + (cut * float(e["std_error"])) ** 2 + 2 * cut * cov
    se = math.sqrt(max(var, 0.0))
    return math.expm1(centre), math.expm1(centre - z * se), math.expm1(centre + z * se)


def promotion(
    segment: Mapping[str, object], response: pd.DataFrame, economics: Economics,
    rules: PlaybookRules,
) -> dict[str, object]:  # fmt: skip
    """The promotion depth that gains the most gross profit in the pessimistic case (the lower
    end of its units-uplift CI), among the depths the segment's promotions were run at (10th to
    90th percentile: no extrapolation) and within the margin floor. Recommended only when that
    pessimistic gain is above zero."""
    lift, e, seen = _get(response, LIFT), _get(response, PRICE), _get(response, DEPTH)
    for name, row in ((LIFT, lift), (PRICE, e), (DEPTH, seen)):
        if row is None or row["status"] != "ok":
            why = "no estimate" if row is None else f"{row['status']}: {row['message']}"
            return _row(segment, "promotion", NO_EVIDENCE, f"{name} {why}", kpi=REVENUE)
    assert lift is not None and e is not None and seen is not None
    c = economics.cost_ratio
    if c is None or not np.isfinite(c):
        return _row(segment, "promotion", NO_EVIDENCE,
                    "no unit costs for the segment's products: a promotion's margin is unknown",
                    kpi=REVENUE)  # fmt: skip
    step = rules.promo_depth_step
    low = max(step, math.ceil(float(seen["ci_low"]) / step - 1e-9) * step)
    high = min(rules.max_promo_depth, float(seen["ci_high"]))
    grid = list(np.arange(low, high + 1e-9, step))
    if not grid:
        return _row(
            segment, "promotion", NO_EVIDENCE,
            f"promotions ran at {float(seen['ci_low']):.0%}-{float(seen['ci_high']):.0%} off: no "
            f"{step:.0%} step of depth in that range (up to {rules.max_promo_depth:.0%}) to price",
            kpi=REVENUE,
        )  # fmt: skip
    floor_depth = 1 - c / (1 - rules.min_margin)
    depths = [d for d in grid if d <= floor_depth + 1e-9]
    if not depths:
        return _row(
            segment, "promotion", NOT_RECOMMENDED,
            f"the margin floor ({rules.min_margin:.0%} after the discount, unit cost {c:.0%} of "
            f"the price) leaves no room for the depths promotions ran at ({low:.0%}-{high:.0%})",
            kpi=REVENUE,
        )  # fmt: skip
    z = float(stats.norm.ppf(0.5 + rules.level / 2))

    def profit(depth: float, uplift: float) -> float:  # gross profit change per 1 of revenue
        return (1 + uplift) * ((1 - depth) - c) - (1 - c)

    cov = lift_price_cov(lift, e, _get(response, UPLIFT), float(seen["estimate"]))
    options = [(float(d), *uplift_at(lift, e, float(d), z, cov)) for d in depths]
    d, u, u_low, u_high = max(options, key=lambda t: (profit(t[0], t[2]), -t[0]))
    if u_low <= 0:
        return _row(
            segment, "promotion", NOT_RECOMMENDED,
            f"no promotion depth between {depths[0]:.0%} and {depths[-1]:.0%} has a units uplift "
            "whose CI clears zero",
            kpi=REVENUE,
        )  # fmt: skip
    text = (
        f"at {d:.0%} off units rise {u:.0%} [{u_low:.0%}, {u_high:.0%}]; gross profit "
        f"{profit(d, u_low):+.1%} to {profit(d, u_high):+.1%} of the promoted products' revenue "
        f"(unit cost {c:.0%} of the price, margin floor {rules.min_margin:.0%})"
    )
    if profit(d, u_low) <= 0:
        verdict = "lose gross profit" if profit(d, u_high) < 0 else "the gain is not clear"
        return _row(
            segment, "promotion", NOT_RECOMMENDED,
            f"promotions lift units but {verdict}: {text}", kpi=REVENUE,
        )  # fmt: skip
    return _row(
        segment, "promotion", RECOMMENDED, text,
        detail=f"promote at {d:.0%} off", kpi=REVENUE,
        effect_low=profit(d, u_low), effect_high=profit(d, u_high),
        effect_unit="gross profit change per 1 of promoted revenue",
    )  # fmt: skip


def channel(segment: Mapping[str, object], response: pd.DataFrame) -> dict[str, object]:
    """The channel with clearly the largest share of the segment's orders (its CI above every
    other channel's), with its change since the previous window."""
    shares = response[
        (response["metric"] == ORDER_SHARE)
        & (response["status"] == "ok")
        & (response["estimate"] > 0)  # a channel seen only in the window before
        & (response["channel"] != NO_CHANNEL)  # orders without a channel name none
    ]
    shares = shares.sort_values(["estimate", "channel"], ascending=[False, True])
    if shares.empty:
        return _row(segment, "channel", NO_EVIDENCE, "too few orders to measure a channel mix",
                    kpi=ORDERS)  # fmt: skip
    top = shares.iloc[0]
    if len(shares) == 1:
        return _row(
            segment, "channel", NO_EVIDENCE,
            f"every order comes through {top['channel']}: the data holds no channel choice",
            kpi=ORDERS,
        )  # fmt: skip
    name, share = str(top["channel"]), float(top["estimate"])
    prev = top["previous_estimate"]
    trend = "" if prev is None or pd.isna(prev) else f", {100 * (share - float(prev)):+.0f} pts"
    if len(shares) > 1 and float(top["ci_low"]) <= float(shares.iloc[1]["ci_high"]):
        other = str(shares.iloc[1]["channel"])
        return _row(
            segment, "channel", NO_EVIDENCE,
            f"{name} ({share:.0%} of orders) and {other} ({float(shares.iloc[1]['estimate']):.0%})"
            " are not told apart",
            kpi=ORDERS,
        )  # fmt: skip
    return _row(
        segment, "channel", RECOMMENDED,
        f"{share:.0%} of the segment's orders come through {name}{trend} since the window before",
        detail=f"reach through {name}", kpi=ORDERS,
        expected=share, expected_low=float(top["ci_low"]),
        expected_high=float(top["ci_high"]),
        effect_unit="share of orders",
    )  # fmt: skip


def monitor(
    segment: Mapping[str, object], economics: Economics,
    reactivation: Reactivation, rules: PlaybookRules,
) -> list[dict[str, object]]:  # fmt: skip
    """The KPIs the next refreshes compare, with the range a week's daily rate falls in when the
    segment keeps its pace (mean +- z sd of its weekly totals over the last weeks, / 7)."""
    z = float(stats.norm.ppf(0.5 + rules.level / 2))
    rows = []
    for kpi, (mean, sd, weeks), unit in (
        (REVENUE, economics.weekly_revenue, "revenue"),
        (ORDERS, economics.weekly_orders, "orders"),
    ):
        if weeks < 4:
            rows.append(
                _row(
                    segment,
                    "monitor",
                    NO_EVIDENCE,
                    f"{weeks} weeks of history: no expected {unit} per day",
                    kpi=kpi,
                )
            )
            continue  # fmt: skip
        low, high = max(mean - z * sd, 0.0) / 7, (mean + z * sd) / 7
        rows.append(
            _row(
                segment, "monitor", TRACKED,
                f"{unit} per day expected {low:,.1f}-{high:,.1f} if the segment keeps the pace of "
                f"its last {weeks} weeks",
                kpi=kpi, expected=mean / 7, expected_low=low, expected_high=high,
            )
        )  # fmt: skip
    rate, low_r, high_r, n = reactivation
    if segment["segment_label"] in CHURN_LABELS and rate is not None and n >= rules.min_n:
        rows.append(
            _row(
                segment, "monitor", TRACKED,
                f"share of these customers ordering again within {rules.window_days} days: "
                f"{low_r:.0%}-{high_r:.0%} without an offer",
                kpi=REACTIVATION, expected=rate, expected_low=low_r, expected_high=high_r,
            )
        )  # fmt: skip
    return rows


def playbook(
    response: pd.DataFrame,
    profiles: pd.DataFrame,
    economics: Mapping[int, Economics],
    reactivation: Reactivation,
    rules: PlaybookRules,
) -> pd.DataFrame:
    """PLAYBOOK_COLUMNS rows: for each segment of `profiles` (segment_id, segment_label,
    customers, yearly_revenue), its actions and monitored KPIs."""
    rows: list[dict[str, object]] = []
    empty = Economics(None, (0.0, 0.0, 0), (0.0, 0.0, 0))
    ordered = profiles.sort_values("segment_id")
    records: list[dict[str, Any]] = ordered.to_dict("records")  # type: ignore[assignment]
    for segment in records:
        own = response[response["segment_id"] == segment["segment_id"]]
        econ = economics.get(int(segment["segment_id"]), empty)
        back = win_back(segment, reactivation, rules)
        rows += [back] if back else []
        rows.append(no_discount(segment, own))
        rows.append(promotion(segment, own, econ, rules))
        rows.append(channel(segment, own))
        rows += monitor(segment, econ, reactivation, rules)
    return pd.DataFrame(rows, columns=list(PLAYBOOK_COLUMNS))
