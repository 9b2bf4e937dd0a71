"""Pure segmentation helpers: label rule, id matching, adjusted Rand index."""

from __future__ import annotations

import numpy as np
import pytest

from salesopt.segment.labels import (
    adjusted_rand_index,
    initial_segment_ids,
    match_segment_ids,
    segment_label,
    unique_labels,
)

TYPICAL = {"frequency": 10.0, "monetary": 300.0, "tenure_days": 300.0, "orders_per_week": 0.3}
ZERO = {"frequency": 0.0, "monetary": 0.0, "tenure_days": 0.0, "orders_per_week": 0.0}


def _label(gaps: float, **z: float) -> str:
    return segment_label({**TYPICAL, "recency_gaps": gaps}, {**ZERO, "recency_gaps": 0.0, **z})


def test_label_rule_in_order() -> None:
    assert _label(7.5, monetary=2.0, orders_per_week=2.0) == "at risk"  # risk wins over value
    assert _label(3.0, orders_per_week=-1.0) == "occasional"  # 3 gaps is not more than 3
    assert _label(0.8, tenure_days=-4.0, orders_per_week=1.4) == "new"
    assert _label(0.6, tenure_days=-1.4, monetary=1.6, orders_per_week=2.0) == "high-value loyal"
    assert _label(0.7, monetary=0.9, orders_per_week=0.2) == "loyal"
    assert _label(0.7, monetary=1.5, orders_per_week=-0.1) == "occasional"


def test_unique_labels_numbers_repeats_by_monetary() -> None:
    got = unique_labels(["loyal", "occasional", "loyal", "loyal"], [100.0, 5.0, 900.0, 50.0])
    assert got == ["loyal 2", "occasional", "loyal", "loyal 3"]


def test_match_segment_ids_follows_nearest_previous_centroid() -> None:
    previous = np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]])
    current = np.array([[9.8, 0.3], [0.1, -0.2], [5.2, 4.9]])  # same clusters, shuffled
    assert match_segment_ids(previous, [4, 0, 2], current) == [2, 4, 0]


def test_match_segment_ids_gives_fresh_ids_to_extra_clusters() -> None:
    previous = np.array([[0.0, 0.0], [10.0, 0.0]])
    current = np.array([[20.0, 20.0], [0.2, 0.0], [9.0, 0.0], [30.0, 30.0]])
    # Hungarian: total distance is minimal with rows 1 and 2 on the previous ids
    assert match_segment_ids(previous, [3, 1], current) == [4, 3, 1, 5]


def test_match_segment_ids_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="previous centroids and previous ids differ"):
        match_segment_ids(np.zeros((2, 2)), [0], np.zeros((2, 2)))


def test_initial_ids_rank_by_monetary() -> None:
    assert initial_segment_ids([50.0, 900.0, 10.0]) == [1, 0, 2]


def test_adjusted_rand_index_hand_computed() -> None:
    # truth  a a a b b b ; predicted 1 1 2 2 3 3
    # contingency rows a:(2,1,0) b:(0,1,2); sum C(n_ij,2) = 1+1 = 2
    # rows: C(3,2)*2 = 6; cols: C(2,2)*3 = 3; C(6,2) = 15
    # expected = 6*3/15 = 1.2; max = (6+3)/2 = 4.5; ARI = (2-1.2)/(4.5-1.2) = 0.8/3.3
    got = adjusted_rand_index(list("aaabbb"), [1, 1, 2, 2, 3, 3])
    assert got == pytest.approx(0.8 / 3.3, abs=1e-12)


def test_adjusted_rand_index_edge_values() -> None:
    assert adjusted_rand_index([0, 0, 1, 1], ["x", "x", "y", "y"]) == pytest.approx(1.0)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="labelings differ in length"):
        adjusted_rand_index([0, 1], [0])
