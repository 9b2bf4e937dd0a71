"""Backtest folds and error metrics on hand-checkable numbers."""

from __future__ import annotations

import math

import numpy as np

from salesopt.forecast import backtest


def test_folds_are_non_overlapping_at_the_end_and_need_enough_training() -> None:
    assert backtest.folds(20, 3, 4, 5) == [(8, 12), (12, 16), (16, 20)]
    assert backtest.folds(20, 3, 4, 10) == [(12, 16), (16, 20)]
    assert backtest.folds(20, 0, 4, 5) == []


def test_mase_scale_is_the_seasonal_naive_in_sample_error() -> None:
    train = np.array([1.0, 2.0, 3.0, 2.0, 4.0, 5.0])
    assert backtest.mase_scale(train, 3) == np.mean([1.0, 2.0, 2.0])
    assert backtest.mase_scale(train, 10) == np.mean([1.0, 1.0, 1.0, 2.0, 1.0])  # naive
    assert math.isnan(backtest.mase_scale(np.array([3.0, 3.0, 3.0]), 1))


def test_error_sums_and_metrics() -> None:
    actual = np.array([10.0, 0.0, 5.0])
    pred = np.array([12.0, 0.0, 4.0])
    sums = backtest.error_sums(actual, pred, scale=2.0)
    assert sums["sum_abs_error"] == 3.0 and sums["sum_error"] == 1.0
    assert sums["sum_scaled_error"] == 1.5 and sums["n_scaled"] == 3.0
    m = backtest.metrics(sums)
    assert m["mase"] == 0.5
    assert m["wape"] == 3.0 / 15.0 and m["bias"] == 1.0 / 15.0
    expected_smape = 100.0 * (2 * 2 / 22 + 0.0 + 2 * 1 / 9) / 3
    assert math.isclose(m["smape"], expected_smape)


def test_sums_add_across_folds_and_undefined_ratios_are_nan() -> None:
    a = backtest.error_sums(np.array([1.0]), np.array([2.0]), 1.0)
    b = backtest.error_sums(np.array([3.0]), np.array([1.0]), float("nan"))
    total = backtest.add(backtest.add({}, a), b)
    assert total["n_points"] == 2.0 and total["n_scaled"] == 1.0
    assert backtest.metrics(total)["mase"] == 1.0
    zero = backtest.metrics(backtest.error_sums(np.zeros(2), np.zeros(2), float("nan")))
    assert math.isnan(zero["mase"]) and math.isnan(zero["wape"]) and zero["smape"] == 0.0


def test_coverage_counts_points_inside_the_interval() -> None:
    actual = np.array([1.0, 5.0, 9.0])
    assert backtest.covered(actual, np.array([0.0, 5.0, 10.0]), np.array([2.0, 6.0, 12.0])) == 2
