"""Time-based holdout for the recommender: train before a cut-off, test on the window after it.

Pure `DataFrame -> DataFrame` functions over silver/order_lines. Training interactions come from
`features.interactions(lines, cutoff, half_life)` (only lines on or before the cut-off); the test
set is the customers' purchases in `(cutoff, as_of]`, restricted to customers and products seen
in training (ALS has no factors for the others; their share is reported).
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from salesopt import features


def cutoff_date(as_of: date, holdout_days: int) -> date:
    """Last day of the training window: the holdout is the `holdout_days` days after it."""
    return as_of - timedelta(days=holdout_days)


def sold_lines(lines: DataFrame) -> DataFrame:
    """Lines that are purchases: not cancelled and a positive quantity. Grain: order line."""
    return lines.where(~F.col("is_cancelled") & (F.col("quantity") > 0))


def training_interactions(lines: DataFrame, cutoff: date, half_life_days: float) -> DataFrame:
    """Interactions from lines on or before `cutoff`. Grain: (customer_id, product_id)."""
    return features.interactions(lines, cutoff, half_life_days)


def holdout_purchases(lines: DataFrame, cutoff: date, as_of: date) -> DataFrame:
    """Purchases in `(cutoff, as_of]`. Grain: one row per (customer_id, product_id)."""
    window = (F.col("order_date") > F.lit(cutoff)) & (F.col("order_date") <= F.lit(as_of))
    return (
        sold_lines(lines)
        .where(window)
        .groupBy("customer_id", "product_id")
        .agg(
            F.min("order_date").alias("first_test_date"),
            F.sum("quantity").cast("long").alias("test_quantity"),
        )
        .select("customer_id", "product_id", "first_test_date", "test_quantity")
    )


def known_test_pairs(test: DataFrame, train: DataFrame) -> DataFrame:
    """Test pairs whose customer and product both appear in training. Grain: as `test`, plus
    `new_to_customer` (the pair itself has no training interaction)."""
    customers = train.select("customer_id").distinct()
    products = train.select("product_id").distinct()
    bought = train.select("customer_id", "product_id", F.lit(False).alias("new_to_customer"))
    return (
        test.join(customers, on="customer_id", how="left_semi")
        .join(products, on="product_id", how="left_semi")
        .join(bought, on=["customer_id", "product_id"], how="left")
        .select(
            "customer_id",
            "product_id",
            "first_test_date",
            "test_quantity",
            F.coalesce(F.col("new_to_customer"), F.lit(True)).alias("new_to_customer"),
        )
    )
