"""Margin-maximising price suggestions under guardrails (pure pandas, no Spark).

Expected units at price p follow the constant-elasticity curve through the current point:
`units(p) = units0 * (p / p0) ** e`. Candidates are a grid over `p0 * (1 +/- max_price_change)`
floored at `unit_cost * (1 + min_margin)`; the candidate with the largest weekly margin
`(p - unit_cost) * units(p)` wins. Only an `ok` elasticity inside the plausible range whose
confidence interval excludes zero moves a price; every other product keeps its price and says
why in `reason`. A considered product names the guardrail that held its price
(`binding_constraint`), and its expected weekly change in units, revenue and margin comes with a
range: the same change on the curves of the interval's two ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import types as T

from salesopt.config import OptimizeSettings

PRICE_INPUT_COLUMNS = (
    "product_id",
    "current_price",
    "units_per_week",
    "unit_cost",
    "elasticity",
    "ci_low",
    "ci_high",
    "status",
)
RECOMMENDATION_FIELDS = (
    ("product_id", T.StringType()),
    ("current_price", T.DoubleType()),
    ("suggested_price", T.DoubleType()),
    ("change_pct", T.DoubleType()),
    ("elasticity", T.DoubleType()),
    ("unit_cost", T.DoubleType()),
    ("price_floor", T.DoubleType()),
    ("expected_units_current", T.DoubleType()),
    ("expected_units_suggested", T.DoubleType()),
    ("expected_revenue_current", T.DoubleType()),
    ("expected_revenue_suggested", T.DoubleType()),
    ("expected_margin_current", T.DoubleType()),
    ("expected_margin_suggested", T.DoubleType()),
    ("reason", T.StringType()),
    ("binding_constraint", T.StringType()),
    ("elasticity_ci_low", T.DoubleType()),
    ("elasticity_ci_high", T.DoubleType()),
    *[
        (f"expected_{measure}_change{end}", T.DoubleType())
        for measure in ("units", "revenue", "margin")
        for end in ("", "_low", "_high")
    ],
)
RECOMMENDATION_SCHEMA = T.StructType([T.StructField(n, t, True) for n, t in RECOMMENDATION_FIELDS])
CHANGED, NO_GAIN = "optimised", "current_is_best"
MAX_INCREASE, MAX_DECREASE = "max_increase", "max_decrease"  # binding_constraint values
MARGIN_FLOOR, NONE = "margin_floor", "none"


@dataclass(frozen=True)
class PriceRules:
    max_price_change: float
    min_margin: float
    elasticity_low: float
    elasticity_high: float
    grid_steps: int

    @classmethod
    def from_settings(cls, s: OptimizeSettings) -> PriceRules:
        low, high = s.elasticity_range
        return cls(s.max_price_change, s.min_margin, low, high, s.price_grid_steps)


def blocking_reason(row: pd.Series, rules: PriceRules) -> str | None:
    """Why a product's price must stay as it is, or None when it may be optimised."""
    if pd.isna(row["current_price"]) or row["current_price"] <= 0 or not row["units_per_week"] > 0:
        return "no_recent_sales"
    if pd.isna(row["unit_cost"]):
        return "no_unit_cost"
    if row["status"] != "ok":
        return f"elasticity_{row['status']}"
    if pd.isna(row["ci_high"]) or row["ci_high"] >= 0:
        return "elasticity_ci_spans_zero"
    if not rules.elasticity_low <= row["elasticity"] <= rules.elasticity_high:
        return "elasticity_out_of_range"
    return None


def candidate_prices(current: float, floor: float, rules: PriceRules) -> np.ndarray:
    """Grid within +/- max_price_change of `current`, at or above `floor` (cents).

    When the whole band lies below the floor, the only candidate is the top of the band: the
    largest allowed step toward the floor.
    """
    band = np.linspace(
        current * (1 - rules.max_price_change),
        current * (1 + rules.max_price_change),
        rules.grid_steps,
    )
    grid = np.unique(np.round(np.append(band, [current, floor]), 2))
    allowed = grid[(grid >= round(floor, 2)) & (grid <= band[-1] + 1e-9) & (grid >= band[0] - 1e-9)]
    return allowed if allowed.size else np.array([round(band[-1], 2)])


def best_price(
    current: float, units: float, cost: float, elasticity: float, rules: PriceRules
) -> tuple[float, float]:
    """(suggested price, expected weekly units there): the max-margin grid candidate."""
    floor = cost * (1 + rules.min_margin)
    prices = candidate_prices(current, floor, rules)
    expected = units * (prices / current) ** elasticity
    margins = (prices - cost) * expected
    best = int(np.argmax(margins))
    return float(prices[best]), float(expected[best])


def binding_constraint(current: float, cost: float, elasticity: float, rules: PriceRules) -> str:
    """The guardrail that holds the suggestion away from the unconstrained margin optimum.

    With constant elasticity e < -1 that optimum is `cost * e / (1 + e)`; with -1 <= e < 0
    (inelastic) margin grows with price without limit, so the upper cap always binds.
    `max_increase` / `max_decrease`: the +/- `max_price_change` band; `margin_floor`: cost plus
    `min_margin`; `none`: the optimum lies inside the allowed range (to the cent).
    """
    low = current * (1 - rules.max_price_change)
    high = current * (1 + rules.max_price_change)
    floor = cost * (1 + rules.min_margin)
    optimum = np.inf if elasticity >= -1 else cost * elasticity / (1 + elasticity)
    if floor > high + 0.005 or optimum > high + 0.005:
        return MAX_INCREASE
    if optimum < max(low, floor) - 0.005:
        return MARGIN_FLOOR if floor >= low else MAX_DECREASE
    return NONE


def expected_changes(
    current: float, suggested: float, units: float, cost: float, elasticities: tuple[float, ...]
) -> dict[str, float]:
    """Weekly change in units, revenue and margin from `current` to `suggested` price.

    `elasticities` = (point, ci_low, ci_high); the change is monotone in the elasticity, so the
    range is the smaller and larger of the changes at the interval's ends.
    """
    out: dict[str, float] = {}
    changes = []
    for e in elasticities:
        new_units = units * (suggested / current) ** e
        changes.append(
            {
                "units": new_units - units,
                "revenue": suggested * new_units - current * units,
                "margin": (suggested - cost) * new_units - (current - cost) * units,
            }
        )
    for measure in ("units", "revenue", "margin"):
        ends = [c[measure] for c in changes[1:]]
        out[f"expected_{measure}_change"] = changes[0][measure]
        out[f"expected_{measure}_change_low"] = min(ends)
        out[f"expected_{measure}_change_high"] = max(ends)
    return out


def recommend_prices(inputs: pd.DataFrame, rules: PriceRules) -> pd.DataFrame:
    """PRICE_INPUT_COLUMNS -> RECOMMENDATION_SCHEMA columns. Grain: one row per input product.

    Expected units, revenue and margin are per week at the current and the suggested price.
    """
    numeric = ["current_price", "units_per_week", "unit_cost", "elasticity", "ci_low", "ci_high"]
    inputs = inputs.astype({c: "float64" for c in numeric})
    rows = []
    for _, rec in inputs.iterrows():
        p0, u0, cost = rec["current_price"], rec["units_per_week"], rec["unit_cost"]
        reason = blocking_reason(rec, rules)
        price, units = p0, u0
        binding = None
        changes: dict[str, float] = {}
        if reason is None:
            binding = binding_constraint(p0, cost, rec["elasticity"], rules)
            price, units = best_price(p0, u0, cost, rec["elasticity"], rules)
            reason = CHANGED if abs(price - round(p0, 2)) >= 0.005 else NO_GAIN
            price = price if reason == CHANGED else p0
            units = units if reason == CHANGED else u0
            bounds = (rec["elasticity"], rec["ci_low"], rec["ci_high"])
            changes = expected_changes(p0, price, u0, cost, bounds)
        known = not (pd.isna(p0) or pd.isna(u0))
        rows.append(
            {
                "product_id": rec["product_id"],
                "current_price": p0,
                "suggested_price": price,
                "change_pct": (price / p0 - 1) * 100 if known and p0 > 0 else None,
                "elasticity": rec["elasticity"],
                "unit_cost": cost,
                "price_floor": cost * (1 + rules.min_margin) if not pd.isna(cost) else None,
                "expected_units_current": u0,
                "expected_units_suggested": units,
                "expected_revenue_current": p0 * u0 if known else None,
                "expected_revenue_suggested": price * units if known else None,
                "expected_margin_current": (p0 - cost) * u0 if known else None,
                "expected_margin_suggested": (price - cost) * units if known else None,
                "reason": reason,
                "binding_constraint": binding,
                "elasticity_ci_low": rec["ci_low"],
                "elasticity_ci_high": rec["ci_high"],
                **changes,
            }
        )
    return pd.DataFrame(rows, columns=[name for name, _ in RECOMMENDATION_FIELDS]).astype(
        {name: "float64" for name, t in RECOMMENDATION_FIELDS if isinstance(t, T.DoubleType)}
    )
