"""The rule that chooses the served recommendation method from validation rows (no Spark)."""

from __future__ import annotations

from typing import Any

from salesopt.config import RecommendSettings
from salesopt.recommend.evaluate import candidate_methods, select
from salesopt.recommend.lists import Method

METHODS = candidate_methods(RecommendSettings(blend_weights=(0.5, 0.9)))


def _rows(all_: dict[str, float], new: dict[str, float]) -> list[dict[str, Any]]:
    """Validation rows as the stage stores them: precision@k per method label and truth."""
    rows = []
    for truth, values in (("all", all_), ("new", new)):
        for label, value in values.items():
            name, _, weight = label.partition("_")
            m = Method(name, float(weight)) if name == "blend" else Method(label)
            rows.append({"model": m.name, "blend_weight": m.weight, "candidates": truth,
                         "metric": "precision_at_k", "value": value})  # fmt: skip
    return rows


def test_popularity_is_served_when_als_and_buy_again_lose_to_it() -> None:
    all_ = {"popular": 0.12, "own_history": 0.05, "own_history_decay": 0.05, "buy_again": 0.05,
            "als": 0.10, "blend_0.5": 0.09, "blend_0.9": 0.06}  # fmt: skip
    assert select(_rows(all_, {"popular": 0.03, "als": 0.05}), METHODS, 0.01) == Method("popular")


def test_a_blend_within_tolerance_wins_on_new_products() -> None:
    all_ = {"popular": 0.07, "own_history": 0.53, "own_history_decay": 0.53, "buy_again": 0.555,
            "als": 0.21, "blend_0.5": 0.40, "blend_0.9": 0.552}  # fmt: skip
    rows = _rows(all_, {"popular": 0.011, "als": 0.049})
    # blend 0.9 is 0.5 % below buy-again on all products and brings new products (ALS's list)
    assert select(rows, METHODS, 0.01) == Method("blend", 0.9)
    # without a tolerance the best on all products is served
    assert select(rows, METHODS, 0.0) == Method("buy_again")


def test_nothing_below_a_baseline_is_served_even_within_tolerance() -> None:
    all_ = {"popular": 0.07, "own_history": 0.55, "own_history_decay": 0.54, "buy_again": 0.553,
            "als": 0.21, "blend_0.5": 0.40, "blend_0.9": 0.549}  # fmt: skip
    rows = _rows(all_, {"popular": 0.011, "als": 0.049})
    assert select(rows, METHODS, 0.01) == Method("buy_again")


def test_ties_and_an_empty_window_go_to_the_simplest_method() -> None:
    assert select([], METHODS, 0.01) == Method("popular")
    all_ = {label: 0.3 for label in ("popular", "own_history", "buy_again")}
    assert select(_rows(all_, {}), METHODS, 0.01) == Method("popular")
    tied = _rows({"own_history": 0.5, "own_history_decay": 0.5, "buy_again": 0.5}, {})
    assert select(tied, METHODS, 0.01) == Method("own_history")
