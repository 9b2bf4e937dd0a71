"""Estimated elasticities recover the generator's planted ones.

The sales_daily-like input is built from the generator's truth (clean daily units joined with
the price calendar) so the estimator is measured apart from ingest. Expected units of a product
on a day are proportional to trend x seasonality x (net_price / list_price) ^ elasticity x 1.15
on promotion, so a log-log regression with those controls should recover `elasticity`.
"""

from __future__ import annotations

from datetime import date
from statistics import median

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt.config import GenerateSettings
from salesopt.datagen import generate, last_day
from salesopt.optimize.elasticity import (
    ElasticityParams,
    elasticity_observations,
    estimate_elasticities,
)

pytestmark = [pytest.mark.spark, pytest.mark.slow]  # a generation and a fit: make test-e2e

# Enough units per product for the planted effect to stand out of the noise: about 100 units a
# day per product over 18 months. At 1500 customers x 30 products x 400 days (about 11 units a
# day) the median error is about 50 % (docs/benchmarks.md).
RECOVERY_GENERATE = GenerateSettings(
    customers=6000, products=12, days=540, start_date=date(2024, 1, 1), seed=42, dirty_rate=0.0
)


def truth_sales_daily(spark: SparkSession, truth: str) -> DataFrame:
    """gold/sales_daily-like rows from the planted truth. Grain: (product_id, date)."""
    prices = spark.read.parquet(f"{truth}/price_calendar")
    return (
        spark.read.parquet(f"{truth}/daily_units")
        .withColumnRenamed("order_date", "date")
        .join(prices, on=["product_id", "date"], how="inner")
        .select(
            "product_id",
            "date",
            "units",
            F.col("net_price").alias("avg_net_price"),
            F.col("promo_pct").alias("discount_share"),
        )
    )


def test_planted_elasticities_are_recovered(spark: SparkSession, tmp_path) -> None:
    generate(spark, str(tmp_path / "gen"), RECOVERY_GENERATE)
    truth = str(tmp_path / "gen" / "truth")
    obs = elasticity_observations(
        truth_sales_daily(spark, truth), last_day(RECOVERY_GENERATE), history_days=730
    )
    params = ElasticityParams(min_obs=60, min_price_cv=0.02, min_distinct_prices=3)
    estimates = estimate_elasticities(obs, params, partitions=2)
    planted = spark.read.parquet(f"{truth}/products").select(
        "product_id", F.col("elasticity").alias("planted"), "price_volatility"
    )
    rows = estimates.join(planted, on="product_id", how="inner").collect()
    assert len(rows) == RECOVERY_GENERATE.products
    stable = [r for r in rows if r["price_volatility"] <= 0.02]
    moving = [r for r in rows if r["price_volatility"] > 0.02]
    # Shelf price within +-2 %: too little variation, whatever the promotions do.
    assert {r["status"] for r in stable} <= {"insufficient_variation"}
    ok = [r for r in moving if r["status"] == "ok"]
    assert len(ok) >= 0.8 * len(moving)
    error = median(abs(r["elasticity"] - r["planted"]) / abs(r["planted"]) for r in ok)
    assert error <= 0.20, f"median absolute relative error {error:.3f} over {len(ok)} products"
