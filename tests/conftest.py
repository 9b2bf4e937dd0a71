"""Shared fixtures: one Delta-enabled local Spark session for the whole run, and small data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from salesopt.config import GenerateSettings, Settings, load_settings
from salesopt.session import get_spark

ROOT = Path(__file__).resolve().parents[1]
TEST_CONF = ROOT / "conf" / "test.yaml"
TEST_PII_KEY = "test-only-pii-key"


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return load_settings(TEST_CONF, environ={})


@pytest.fixture(scope="session")
def spark(base_settings: Settings, tmp_path_factory) -> Iterator[SparkSession]:
    """local[2], UI off, 4 shuffle partitions, UTC, Delta on: every setting on the builder."""
    os.environ.setdefault(base_settings.clean.pii_key_env, TEST_PII_KEY)
    session = get_spark(base_settings.spark, str(tmp_path_factory.mktemp("checkpoints")))
    yield session
    session.stop()


@pytest.fixture
def settings_for(base_settings: Settings, tmp_path: Path):
    """Settings pointed at a fresh warehouse and landing folder under tmp_path."""

    def make(**sections: dict) -> Settings:
        paths = {"warehouse": str(tmp_path / "warehouse"), "landing": str(tmp_path / "landing")}
        paths.update(sections.pop("paths", {}))
        return base_settings.with_overrides(paths=paths, **sections)

    return make


SMALL_GENERATE = {
    "customers": 600,
    "products": 40,
    "days": 400,
    "start_date": "2024-01-01",
    "seed": 42,
    "dirty_rate": 0.03,
}
SMALL_AS_OF = date(2025, 2, 3)  # last generated day of SMALL_GENERATE
# A fixed k, one k-means run and fewer ALS iterations for the shared refresh (`small_refresh`).
SMALL_REFRESH_MODELS: dict[str, dict] = {
    "segmentation": {"k": 4, "init_runs": 1},
    "recommend": {"max_iter": 5},
}


@pytest.fixture(scope="session")
def small_generated(spark: SparkSession, base_settings: Settings, tmp_path_factory):
    """SMALL_GENERATE landing files + truth, generated once per test session."""
    from salesopt.datagen import generate

    out = tmp_path_factory.mktemp("small_generated")
    gen = GenerateSettings.model_validate({**base_settings.generate.model_dump(), **SMALL_GENERATE})
    summary = generate(spark, str(out), gen)
    return out, gen, summary


@pytest.fixture(scope="session")
def small_refresh(spark: SparkSession, base_settings: Settings, small_generated, tmp_path_factory):
    """The real refresh (every stage) over SMALL_GENERATE, run once per session.

    Its segmentation and recommendation settings are lean (SMALL_REFRESH_MODELS): the tests on
    it check the warehouse and the report built from every stage's tables, while the k sweep,
    the repeated k-means runs and ALS quality have their own tests (test_segment,
    test_recommend). It is tracked in MLflow (test_tracking).
    """
    from salesopt.pipeline import refresh

    out, _gen, _ = small_generated
    warehouse = tmp_path_factory.mktemp("small_warehouse")
    settings = base_settings.with_overrides(
        paths={"warehouse": str(warehouse), "landing": str(out / "landing")},
        tracking={
            "enabled": True,
            "register_models": True,
        },  # the default store under the warehouse
        **SMALL_REFRESH_MODELS,
    )
    summary = refresh(spark, settings, SMALL_AS_OF)
    return settings, out, summary
