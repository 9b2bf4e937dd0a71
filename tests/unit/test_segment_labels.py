"""Pure segmentation helpers: label rule, id matching, adjusted Rand index."""

from __future__ import annotations

import numpy as np
import pytest

from salesopt.config import Settings
from salesopt.segment.labels import (
    FEW_ORDERS_ID,
    adjusted_rand_index,
    fixed_labels,
    initial_segment_ids,
    match_segment_ids,
    segment_label,
    unique_labels,
)
from salesopt.segment.model import widen
from salesopt.segment.stage import edge_note


def _z(monetary: float = 0.0, orders_per_week: float = 0.0, frequency: float = 0.0) -> dict:
    return {"monetary": monetary, "orders_per_week": orders_per_week, "frequency": frequency}


def test_label_is_value_tier_then_frequency() -> None:
    assert segment_label(_z(1.2, 0.9)) == "high value, frequent"
    assert segment_label(_z(0.75, 0.5)) == "high value, frequent"  # thresholds are inclusive
    assert segment_label(_z(0.74, 0.49)) == "mid value, regular"
    assert segment_label(_z(-0.8, -0.6)) == "low value, infrequent"
    assert segment_label(_z(1.5, -1.0)) == "high value, infrequent"


def test_unique_labels_tell_repeats_apart_by_their_largest_difference() -> None:
    labels = ["mid value, regular", "low value, infrequent", "mid value, regular"]
    z = [_z(0.1, 0.4, 0.0), _z(-1.0, -1.0), _z(0.3, -0.3, 0.1)]  # pace differs most
    assert unique_labels(labels, z) == [
        "mid value, regular (more frequent)",
        "low value, infrequent",
        "mid value, regular (less frequent)",
    ]
    three = unique_labels(["a", "a", "a"], [_z(0.0), _z(0.5), _z(-0.5)])  # spend differs most
    assert three == ["a (spend 2 of 3)", "a (spend 1 of 3)", "a (spend 3 of 3)"]


def test_fixed_labels_are_unique_and_name_the_order_floor() -> None:
    assert fixed_labels(2)[FEW_ORDERS_ID] == "one-time buyers"
    assert fixed_labels(3)[FEW_ORDERS_ID] == "fewer than 3 orders"
    assert len(set(fixed_labels(2).values())) == 5


def test_widen_moves_the_sweep_off_an_edge() -> None:
    assert widen({3: 0.5, 4: 0.6, 5: 0.7}, 3, 5, limit=9) == 6  # best at the top
    assert widen({3: 0.5, 4: 0.6, 5: 0.7, 6: 0.65}, 3, 5, limit=9) is None  # now inside
    assert widen({3: 0.5, 4: 0.6, 5: 0.7}, 3, 5, limit=5) is None  # no room left
    assert widen({3: 0.8, 4: 0.6, 5: 0.7}, 3, 5, limit=9) == 2  # best at the bottom
    assert widen({2: 0.9, 3: 0.8, 4: 0.6}, 3, 4, limit=9) is None  # 2 is the smallest k
    assert widen({3: 0.7, 4: 0.7, 5: 0.7}, 3, 5, limit=9) == 2  # ties go to the smaller k


def test_edge_note_says_when_the_best_k_is_still_at_an_edge() -> None:
    sweep = Settings().segmentation.model_copy(update={"k_min": 3, "k_max": 5, "k_widen": 2})
    assert "largest k tried" in (edge_note([3, 4, 5, 6, 7], 7, sweep) or "")
    assert edge_note([3, 4, 5, 6], 5, sweep) is None
    assert "smallest k tried" in (edge_note([3, 4, 5], 3, sweep) or "")
    assert edge_note([2, 3, 4], 2, sweep) is None
    assert edge_note([5], 5, sweep.model_copy(update={"k": 5})) is None


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
