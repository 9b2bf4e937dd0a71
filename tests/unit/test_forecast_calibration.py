"""Calibration scores, factors and scaled bounds (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from salesopt.forecast import calibration


def test_scores_measure_distance_in_half_widths_on_log1p() -> None:
    point = np.expm1(np.full(4, 2.0))
    lower, upper = np.expm1(np.full(4, 1.5)), np.expm1(np.full(4, 3.0))
    actual = np.expm1(np.array([2.0, 2.5, 4.0, 1.0]))
    got = calibration.scores(actual, point, lower, upper)
    assert got == pytest.approx([0.0, 0.5, 2.0, 2.0])


def test_a_zero_width_side_gives_no_score() -> None:
    zero = np.zeros(3)
    upper = np.array([0.0, 0.0, 2.0])
    got = calibration.scores(np.array([0.0, 3.0, 1.0]), zero, zero, upper)
    assert np.isnan(got[0]) and np.isnan(got[1])  # nothing can widen a zero width
    assert got[2] == pytest.approx(np.log1p(1.0) / np.log1p(2.0))


def test_factor_is_the_smallest_score_covering_the_level() -> None:
    values = np.arange(1, 21) / 10.0  # 0.1 .. 2.0
    assert calibration.factor(values, 0.8) == pytest.approx(1.6)
    assert np.mean(values <= calibration.factor(values, 0.8)) == pytest.approx(0.8)


def test_scaled_bounds_keep_the_point_and_scale_half_widths() -> None:
    point = np.expm1(np.array([1.0]))
    lo, hi = calibration.scaled_bounds(point, np.expm1(np.array([0.5])), np.expm1(np.array([1.5])),
                                       1.6)  # fmt: skip
    assert np.log1p(lo) == pytest.approx([0.2]) and np.log1p(hi) == pytest.approx([1.8])
    lo, _ = calibration.scaled_bounds(point, np.zeros(1), np.expm1(np.array([1.5])), 3.0)
    assert lo == pytest.approx([0.0])  # never below zero
