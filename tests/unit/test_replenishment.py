"""Replenishment policy arithmetic without Spark: z values, interval sigmas, category overrides."""

from __future__ import annotations

import pytest

from salesopt.config import OptimizeSettings, Settings
from salesopt.errors import ConfigError
from salesopt.optimize.replenishment import interval_z, policy_rows, z_score


def test_service_level_z_values() -> None:
    assert z_score(0.95) == pytest.approx(1.644854, abs=1e-6)
    assert z_score(0.98) == pytest.approx(2.053749, abs=1e-6)


def test_interval_half_width_in_sigmas() -> None:
    # a central 80 % interval spans +/- 1.2816 sigma; 95 % spans +/- 1.96 sigma
    assert interval_z(0.8) == pytest.approx(1.281552, abs=1e-6)
    assert interval_z(0.95) == pytest.approx(1.959964, abs=1e-6)
    # hand example: yhat 100, 80 % interval [74.37, 125.63] -> sigma = 51.26 / 2.5631 = 20.0
    assert (125.63 - 74.37) / (2 * interval_z(0.8)) == pytest.approx(20.0, abs=1e-3)


def test_overrides_replace_defaults_key_by_key() -> None:
    settings = OptimizeSettings(
        lead_time_days=7,
        review_period_days=7,
        service_level=0.95,
        category_overrides={"produce": {"lead_time_days": 2, "service_level": 0.98}},
    )
    rows = {r[0]: r for r in policy_rows(settings, ["dairy", "produce"])}
    assert rows["dairy"] == ("dairy", 7, 7, 0.95, pytest.approx(1.644854, abs=1e-6))
    assert rows["produce"] == ("produce", 2, 7, 0.98, pytest.approx(2.053749, abs=1e-6))


def test_override_for_a_category_without_products_is_kept() -> None:
    settings = OptimizeSettings(category_overrides={"frozen": {"review_period_days": 14}})
    assert [r[0] for r in policy_rows(settings, ["dairy"])] == ["dairy", "frozen"]


def test_unknown_override_key_is_rejected_with_its_name() -> None:
    with pytest.raises(
        ConfigError, match=r"category_overrides.produce: unknown key\(s\) \['lead_days'\]"
    ):
        Settings().with_overrides(optimize={"category_overrides": {"produce": {"lead_days": 2}}})


def test_override_service_level_out_of_range_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"category_overrides\.dairy\.service_level must be in"):
        Settings().with_overrides(
            optimize={"category_overrides": {"dairy": {"service_level": 1.2}}}
        )
