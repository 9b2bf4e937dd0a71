"""Estimated elasticities recover the generator's planted ones.

The input is the generator's clean order lines (`planted_lines`, the silver/order_lines
contract with store_id and promo), so the estimator is measured apart from ingest. Expected units
of a product on a day are proportional to trend x seasonality x (net_price / list_price) ^
elasticity x 1.15 on promotion, so the within-store log-log regression with its promotion term
should recover `elasticity`.
"""

from __future__ import annotations

from datetime import date
from statistics import median

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from salesopt.config import GenerateSettings
from salesopt.datagen import last_day, planted_lines
from salesopt.datagen.entities import products_frame
from salesopt.optimize.elasticity import (
    ElasticityParams,
    elasticity_observations,
    estimate_elasticities,
    location_traffic,
)

pytestmark = [pytest.mark.spark, pytest.mark.slow]  # a generation and a fit: make test-e2e

# Enough units per product for the planted effect to stand out of the noise: about 100 units a
# day per product over 18 months. At 1500 customers x 30 products x 400 days (about 11 units a
# day) the median error is about 50 % (docs/benchmarks.md).
RECOVERY_GENERATE = GenerateSettings(
    customers=6000, products=12, days=540, start_date=date(2024, 1, 1), seed=42, dirty_rate=0.0
)


def test_planted_elasticities_are_recovered(spark: SparkSession) -> None:
    gen = RECOVERY_GENERATE
    lines = planted_lines(spark, RECOVERY_GENERATE)
    obs = elasticity_observations(lines, last_day(gen), history_days=730)
    params = ElasticityParams(min_obs=40, min_price_cv=0.02, min_distinct_prices=3)
    traffic = location_traffic(lines, last_day(gen), history_days=730)
    estimates = estimate_elasticities(obs, params, partitions=2, traffic=traffic)
    planted = products_frame(spark, gen.seed, gen.products, gen.days).select(
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
    # the generator prices every store alike: the stores are summed into one series
    assert {r["specification"] for r in ok} == {"summed_locations"}
    assert all(r["elasticity_raw"] < 0 for r in ok), [
        (r["elasticity_raw"], r["planted"]) for r in ok
    ]
    error = median(abs(r["elasticity_raw"] - r["planted"]) / abs(r["planted"]) for r in ok)
    assert error <= 0.20, f"median absolute relative error {error:.3f} over {len(ok)} products"
