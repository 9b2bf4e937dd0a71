"""Product x period sales series (`gold/sales_daily`, `gold/sales_weekly`): pure transformations.

The measures come from three aggregation steps over lines clustered by (product, period): per
order, per customer, then per product and period. Distinct orders and customers are counted as
rows of the earlier steps, not with `count(DISTINCT ...)`: two distinct counts in one aggregate
make Spark copy every line once per distinct column. The three steps share one shuffle of the
lines. An order belongs to one customer (docs/source-contract.md); `n_orders` counts
(customer, order) pairs.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from salesopt.features import counted_line, returned_line, sold_line

SALES_MEASURES = (
    "units", "gross_units", "returned_units", "revenue", "avg_net_price", "avg_unit_price",
    "discount_share", "n_orders", "n_customers",
)  # fmt: skip
# additive parts summed at each step; the prices and shares are ratios of them at the end
_SUMS = (
    "units", "gross_units", "returned_units", "revenue", "sold_net", "sold_gross", "sold_discount"
)  # fmt: skip
_NO_UNITS = 0
_NO_AMOUNT = 0.0


def _line_sums() -> list[Column]:
    def where(condition: Column, value: Column, zero: object) -> Column:
        return F.sum(F.when(condition, value).otherwise(zero))

    sold = sold_line()
    return [
        where(counted_line(), F.col("quantity"), _NO_UNITS).alias("units"),
        where(sold, F.col("quantity"), _NO_UNITS).alias("gross_units"),
        where(returned_line(), -F.col("quantity"), _NO_UNITS).alias("returned_units"),
        where(counted_line(), F.col("net_amount"), _NO_AMOUNT).alias("revenue"),
        where(sold, F.col("net_amount"), _NO_AMOUNT).alias("sold_net"),
        where(sold, F.col("gross_amount"), _NO_AMOUNT).alias("sold_gross"),
        where(sold, F.col("discount"), _NO_AMOUNT).alias("sold_discount"),
    ]


def _resum(*extra: Column) -> list[Column]:
    return [
        *[F.sum(c).alias(c) for c in _SUMS],
        F.first("category", ignorenulls=True).alias("category"),
        *extra,
    ]


def _with_sold_count(name: str) -> Column:
    """Rows of the previous step with a sold line (and a key, as count(DISTINCT) skips nulls)."""
    return F.count(F.when(F.col("sold") & F.col(name).isNotNull(), F.lit(1)))


def _sales_by(lines: DataFrame, period: str) -> DataFrame:
    """Sales per (product_id, `period`), `period` being a date column of `lines`."""
    keys = ["product_id", period]
    per_order = (
        lines.repartition(*keys)  # the three steps below run without another shuffle
        .groupBy(*keys, "customer_id", "order_id")
        .agg(
            *_line_sums(),
            F.first("category", ignorenulls=True).alias("category"),
            F.max(sold_line()).alias("sold"),
        )
    )
    per_customer = per_order.groupBy(*keys, "customer_id").agg(
        *_resum(_with_sold_count("order_id").alias("n_orders"), F.max("sold").alias("sold"))
    )
    totals = per_customer.groupBy(*keys).agg(
        *_resum(
            F.sum("n_orders").alias("n_orders"),
            _with_sold_count("customer_id").alias("n_customers"),
        )
    )
    gross_units = F.nullif(F.col("gross_units"), F.lit(_NO_UNITS))
    return totals.select(
        "product_id",
        "category",
        period,
        F.col("units").cast("long").alias("units"),
        F.col("gross_units").cast("long").alias("gross_units"),
        F.col("returned_units").cast("long").alias("returned_units"),
        F.round("revenue", 2).alias("revenue"),
        (F.col("sold_net") / gross_units).alias("avg_net_price"),
        (F.col("sold_gross") / gross_units).alias("avg_unit_price"),
        F.coalesce(
            F.col("sold_discount") / F.nullif(F.col("sold_gross"), F.lit(_NO_AMOUNT)),
            F.lit(_NO_AMOUNT),
        ).alias("discount_share"),
        F.col("n_orders").cast("long").alias("n_orders"),
        F.col("n_customers").cast("long").alias("n_customers"),
    )


def sales_daily(lines: DataFrame) -> DataFrame:
    """Product x day sales. Grain: one row per (product_id, date) with any activity."""
    return _sales_by(lines.withColumn("date", F.col("order_date")), "date")


def sales_weekly(lines: DataFrame) -> DataFrame:
    """Product x ISO week sales (weeks start on Monday). Grain: (product_id, week_start)."""
    week_start = F.date_trunc("week", F.col("order_date")).cast("date")
    return _sales_by(lines.withColumn("week_start", week_start), "week_start")
