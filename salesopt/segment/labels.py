"""Pure helpers of the segmentation stage: the label rule, id matching and the adjusted Rand index.

No Spark here: each function takes plain numbers or numpy/pandas values and is unit-tested alone.
The label rule is documented in docs/segmentation.md; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

NEW_ID = -1
NEW_LABEL = "new / insufficient history"
FEW_ORDERS_ID = -2
FEW_ORDERS_LABEL = "few orders / insufficient history"
FIXED_SEGMENTS = {NEW_ID: NEW_LABEL, FEW_ORDERS_ID: FEW_ORDERS_LABEL}

AT_RISK_GAPS = 3.0  # more expected orders missed than this -> "at risk"
NEW_TENURE_Z = -1.5  # tenure this many standard deviations below the typical customer -> "new"
HIGH_VALUE_Z = 1.0  # monetary this many standard deviations above typical -> "high-value"


def segment_label(centroid: Mapping[str, float], z: Mapping[str, float]) -> str:
    """Human-readable label of one cluster from its centroid; the first rule that holds wins.

    `centroid` is in original units (orders, money, days, orders per week, gaps); `z` is the same
    centroid in the model's standardised log space (0 = the typical fitted customer).

    1. "at risk": recency_gaps (days since the last order / the customer's mean days between
       orders) > AT_RISK_GAPS: the customer has missed that many expected orders.
    2. "new": tenure_days z-score <= NEW_TENURE_Z.
    3. "high-value loyal": monetary z >= HIGH_VALUE_Z and orders_per_week z >= 0.
    4. "loyal": orders_per_week z >= 0.
    5. "occasional": everything else.
    """
    if centroid["recency_gaps"] > AT_RISK_GAPS:
        return "at risk"
    if z["tenure_days"] <= NEW_TENURE_Z:
        return "new"
    if z["monetary"] >= HIGH_VALUE_Z and z["orders_per_week"] >= 0:
        return "high-value loyal"
    if z["orders_per_week"] >= 0:
        return "loyal"
    return "occasional"


def unique_labels(labels: Sequence[str], monetary: Sequence[float]) -> list[str]:
    """Makes labels unique: repeated labels get " 2", " 3"... in order of descending monetary."""
    order = sorted(range(len(labels)), key=lambda i: (-monetary[i], i))
    seen: dict[str, int] = {}
    result = list(labels)
    for i in order:
        seen[labels[i]] = seen.get(labels[i], 0) + 1
        if seen[labels[i]] > 1:
            result[i] = f"{labels[i]} {seen[labels[i]]}"
    return result


def match_segment_ids(
    previous: np.ndarray, previous_ids: Sequence[int], current: np.ndarray
) -> list[int]:
    """Segment id for each current centroid: the previous segment it is matched to.

    Centroids are rows in one common space. The Hungarian assignment (linear_sum_assignment)
    minimises the total Euclidean distance; with more current than previous centroids the
    unmatched ones get fresh ids above every previous id, in row order.
    """
    if len(previous_ids) != previous.shape[0]:
        raise ValueError("previous centroids and previous ids differ in length")
    ids = [-1] * current.shape[0]
    if previous.shape[0] > 0 and current.shape[0] > 0:
        cost = np.linalg.norm(current[:, None, :] - previous[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols, strict=True):
            ids[r] = int(previous_ids[c])
    next_id = max([*previous_ids, -1]) + 1
    for i, assigned in enumerate(ids):
        if assigned == -1:
            ids[i] = next_id
            next_id += 1
    return ids


def initial_segment_ids(monetary: Sequence[float]) -> list[int]:
    """Ids for a first run (no previous segments): 0 for the highest centroid monetary, then 1..."""
    order = sorted(range(len(monetary)), key=lambda i: (-monetary[i], i))
    ids = [0] * len(monetary)
    for rank, i in enumerate(order):
        ids[i] = rank
    return ids


def _pairs(counts: np.ndarray) -> float:
    return float((counts * (counts - 1) / 2.0).sum())


def adjusted_rand_index(
    truth: Sequence[object] | pd.Series, predicted: Sequence[object] | pd.Series
) -> float:
    """Adjusted Rand index (Hubert & Arabie) of two labelings of the same items: 1 = identical
    partitions, about 0 for independent ones. Labels may be any hashable values."""
    a, b = np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)
    if a.shape != b.shape:
        raise ValueError("labelings differ in length")
    n = a.shape[0]
    if n < 2:
        return 1.0
    table = pd.crosstab(pd.Series(a, dtype=str), pd.Series(b, dtype=str)).to_numpy()
    index = _pairs(table)
    rows, cols = _pairs(table.sum(axis=1)), _pairs(table.sum(axis=0))
    expected = rows * cols / (n * (n - 1) / 2.0)
    best = (rows + cols) / 2.0
    if best == expected:
        return 1.0
    return (index - expected) / (best - expected)
