"""Ranking metrics on a hand-computed example (pure Python, no Spark)."""

from __future__ import annotations

import math

import pytest

from salesopt.recommend import metrics

# customer a: hits at ranks 1 and 3 of 4 recommended; 3 relevant products
# customer b: one hit at rank 2; 1 relevant product
RECS = {"a": ["p1", "p2", "p3", "p4"], "b": ["p5", "p6", "p7"]}
RELEVANT = {"a": {"p1", "p3", "p9"}, "b": {"p6"}}
K = 3


def test_precision_recall_map_ndcg_by_hand() -> None:
    got = metrics.ranking_metrics(RECS, RELEVANT, K)
    # precision: a 2/3, b 1/3 -> 1/2
    assert got["precision_at_k"] == pytest.approx(0.5)
    # recall: a 2/3, b 1/1 -> 5/6
    assert got["recall_at_k"] == pytest.approx(5 / 6)
    # AP@3: a (1/1 + 2/3) / min(3, 3) = 5/9; b (1/2) / 1 = 1/2 -> mean 19/36
    assert got["map_at_k"] == pytest.approx(19 / 36)
    # NDCG@3: a (1 + 1/log2 4) / (1 + 1/log2 3 + 1/log2 4); b (1/log2 3) / 1
    ndcg_a = (1 + 0.5) / (1 + 1 / math.log2(3) + 0.5)
    ndcg_b = 1 / math.log2(3)
    assert got["ndcg_at_k"] == pytest.approx((ndcg_a + ndcg_b) / 2)


def test_customer_without_recommendations_scores_zero() -> None:
    got = metrics.ranking_metrics({}, {"c": {"p1"}}, 5)
    assert got == {"precision_at_k": 0.0, "recall_at_k": 0.0, "map_at_k": 0.0, "ndcg_at_k": 0.0}


def test_short_list_still_divides_by_k() -> None:
    assert metrics.precision_at_k(["p1"], {"p1"}, 4) == pytest.approx(0.25)


def test_coverage_counts_distinct_products_in_top_k() -> None:
    # top-3 lists show p1, p2, p3, p5, p6, p7 -> 6 of a 12-product catalogue
    assert metrics.coverage(RECS, catalogue_size=12, k=K) == pytest.approx(0.5)
