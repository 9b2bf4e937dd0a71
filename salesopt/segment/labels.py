"""Pure helpers of the segmentation stage: the label rules, id matching and the adjusted Rand index.

No Spark here: each function takes plain numbers or numpy/pandas values and is unit-tested alone.
The label rule is documented in docs/segmentation.md; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

NEW_ID = -1
NEW_LABEL = "new customers"
FEW_ORDERS_ID = -2
LAPSED_ID = -3
LAPSED_LABEL = "lapsed"
AT_RISK_ID = -4
AT_RISK_LABEL = "at risk"
LIFECYCLE_IDS = (NEW_ID, LAPSED_ID, AT_RISK_ID, FEW_ORDERS_ID)  # rule order: the first that holds
CHURN_IDS = (AT_RISK_ID, LAPSED_ID)
ACTIVE_ID = -5  # active repeat customers when they are too few to cluster
ACTIVE_LABEL = "active repeat customers"

HIGH_VALUE_Z = 0.75  # centroid monetary this many standard deviations above typical -> "high value"
FREQUENT_Z = 0.5  # centroid orders_per_week this far above typical -> "frequent"
# words for telling apart two clusters with the same label: feature -> (higher, lower)
CONTRASTS = {
    "monetary": ("higher spend", "lower spend", "spend"),
    "orders_per_week": ("more frequent", "less frequent", "frequency"),
    "frequency": ("more orders", "fewer orders", "orders"),
}


def few_orders_label(min_orders: int) -> str:
    """Label of the customers held back for too few orders (`segmentation.min_orders`)."""
    return "one-time buyers" if min_orders == 2 else f"fewer than {min_orders} orders"


def fixed_labels(min_orders: int) -> dict[int, str]:
    """Segment id -> label of the rule-based (lifecycle) segments."""
    return {
        NEW_ID: NEW_LABEL,
        LAPSED_ID: LAPSED_LABEL,
        AT_RISK_ID: AT_RISK_LABEL,
        FEW_ORDERS_ID: few_orders_label(min_orders),
        ACTIVE_ID: ACTIVE_LABEL,
    }


def segment_label(z: Mapping[str, float]) -> str:
    """Label of one model cluster of active repeat customers: value tier, then buying frequency.

    `z` is the cluster centre in the model's standardised log space (0 = the typical active
    repeat customer). Value: "high value" when z(monetary) >= HIGH_VALUE_Z, "low value" when
    <= -HIGH_VALUE_Z, else "mid value". Frequency: "frequent" when z(orders_per_week) >=
    FREQUENT_Z, "infrequent" when <= -FREQUENT_Z, else "regular". Lapsed, at-risk and new
    customers never reach the model: their segments come from the lifecycle rule.
    """
    money, pace = z["monetary"], z["orders_per_week"]
    value = "high" if money >= HIGH_VALUE_Z else "low" if money <= -HIGH_VALUE_Z else "mid"
    frequency = "regular"
    if pace >= FREQUENT_Z:
        frequency = "frequent"
    elif pace <= -FREQUENT_Z:
        frequency = "infrequent"
    return f"{value} value, {frequency}"


def unique_labels(labels: Sequence[str], z: Sequence[Mapping[str, float]]) -> list[str]:
    """Makes labels unique and still meaningful: clusters sharing a label are told apart by the
    CONTRASTS feature on which their centres differ most ("(higher spend)" / "(lower spend)";
    with three or more, "(spend 1 of 3)" ... by descending centre)."""
    result = list(labels)
    for label in dict.fromkeys(labels):
        members = [i for i, other in enumerate(labels) if other == label]
        if len(members) < 2:
            continue
        feature = max(CONTRASTS, key=lambda f: float(np.ptp([z[i][f] for i in members])))
        higher, lower, noun = CONTRASTS[feature]
        order = sorted(members, key=lambda i: (-z[i][feature], i))
        for rank, i in enumerate(order):
            if len(order) == 2:
                result[i] = f"{label} ({higher if rank == 0 else lower})"
            else:
                result[i] = f"{label} ({noun} {rank + 1} of {len(order)})"
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
