"""Gold snapshots from silver order lines: customer features and interactions.

Pure `DataFrame -> DataFrame` functions (grains in docs/tables.md); `salesopt.gold` reads silver
and writes gold in one place (the sales series are in `salesopt.sales`). Customer features and
interactions are `as_of` snapshots that use only lines on or before `as_of`. Customer features
are computed as a calendar-free state (`customer_state`: sums over the lines) and the columns
derived from it for the date (`derive_customer_features`: recency, tenure).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def counted_line() -> Column:
    """A line that counts toward sales: not cancelled."""
    return ~F.col("is_cancelled")


def sold_line() -> Column:
    """A line that counts as a sale: not cancelled, positive quantity."""
    return counted_line() & (F.col("quantity") > 0)


def returned_line() -> Column:
    """A counted return: not cancelled, negative quantity."""
    return counted_line() & (F.col("quantity") < 0)


def history_weeks(as_of: date, history_days: int) -> tuple[date, date]:
    """(first, last) Monday of the whole weeks inside the `history_days` days up to as_of."""
    first_day = as_of - timedelta(days=history_days - 1)
    first = first_day + timedelta(days=(7 - first_day.weekday()) % 7)
    last = as_of - timedelta(days=6 + (as_of.weekday() + 1) % 7)
    return first, last


def lines_up_to(lines: DataFrame, as_of: date) -> DataFrame:
    """Lines that happened on or before `as_of` (no future information in a snapshot)."""
    return lines.where(F.col("order_date") <= F.lit(as_of))


# the silver columns the snapshots read (customer_features, interactions)
SNAPSHOT_INPUT = (
    "customer_id", "product_id", "order_id", "order_date", "quantity", "net_amount", "category",
    "is_cancelled",
)  # fmt: skip
CUSTOMER_STATE = (
    "customer_id", "frequency", "monetary", "first_order_date", "last_order_date", "avg_basket",
    "avg_lines_per_order", "return_rate", "top_category", "category_mix", "sold_lines",
    "sold_units", "returned_units", "category_revenue",
)  # fmt: skip
# the additive parts of a customer state (sums over lines), from which the ratios are computed
CUSTOMER_COMPONENTS = (
    "customer_id", "frequency", "monetary", "first_order_date", "last_order_date", "sold_lines",
    "sold_units", "returned_units", "category_revenue",
)  # fmt: skip
# a state row is part of the snapshot when this count is positive (a sold line); keys whose
# counted lines are all returns have a state row but no snapshot row
CUSTOMER_VISIBLE = "frequency"
INTERACTION_VISIBLE = "n_purchases"


def _customer_components(counted: DataFrame) -> DataFrame:
    """Per customer sums over counted lines (no filter on frequency). Grain: customer."""
    per_customer = counted.groupBy("customer_id").agg(
        F.count_distinct(F.when(sold_line(), F.col("order_id"))).alias("frequency"),
        F.round(F.sum("net_amount"), 2).alias("monetary"),
        F.min(F.when(sold_line(), F.col("order_date"))).alias("first_order_date"),
        F.max(F.when(sold_line(), F.col("order_date"))).alias("last_order_date"),
        F.count(F.when(sold_line(), True)).alias("sold_lines"),
        F.sum(F.when(sold_line(), F.col("quantity")).otherwise(0)).cast("long").alias("sold_units"),
        F.sum(F.when(returned_line(), -F.col("quantity")).otherwise(0))
        .cast("long")
        .alias("returned_units"),
    )
    by_category = (
        counted.where(F.col("category").isNotNull())
        .groupBy("customer_id", "category")
        .agg(F.sum("net_amount").alias("revenue"))
    )
    mix = by_category.groupBy("customer_id").agg(
        F.map_from_entries(F.sort_array(F.collect_list(F.struct("category", "revenue")))).alias(
            "category_revenue"
        )
    )
    return per_customer.join(mix, on="customer_id", how="left").select(*CUSTOMER_COMPONENTS)


def _finish_customer(components: DataFrame) -> DataFrame:
    """Customer state from its components: the ratios, top category and category mix.

    Top category: highest net revenue (ties: the greater name). Category mix: each category's
    share of the positive category revenues, rounded to 6 decimals.
    """
    revenue = F.col("category_revenue")
    orders = F.nullif(F.col("frequency"), F.lit(0))
    positive = F.transform_values(revenue, lambda _k, v: F.greatest(v, F.lit(0.0)))
    total = F.aggregate(F.map_values(positive), F.lit(0.0), lambda a, x: a + x)
    top = F.array_max(
        F.transform(
            F.map_entries(revenue), lambda e: F.struct(e["value"].alias("v"), e["key"].alias("k"))
        )
    )
    return (
        components.withColumn("avg_basket", F.round(F.col("monetary") / orders, 4))
        .withColumn("avg_lines_per_order", F.col("sold_lines") / orders)
        .withColumn(
            "return_rate",
            F.coalesce(
                F.least(
                    F.lit(1.0), F.col("returned_units") / F.nullif(F.col("sold_units"), F.lit(0))
                ),
                F.lit(0.0),
            ),
        )
        .withColumn("top_category", top["k"])
        .withColumn(
            "category_mix",
            F.transform_values(
                positive,
                lambda _k, v: F.when(total > 0, F.round(v / total, 6)).otherwise(F.lit(0.0)),
            ),
        )
        .select(*CUSTOMER_STATE)
    )


def customer_state(lines: DataFrame, as_of: date) -> DataFrame:
    """The part of customer features that does not move with the calendar. Grain: customer.

    Uses only lines on or before `as_of`; `derive_customer_features` adds the date-relative
    columns (recency, tenure, orders per week). Grain: every customer with a counted line, also
    when none of them is a sale (frequency 0: not part of the features).
    """
    return _finish_customer(_customer_components(lines_up_to(lines, as_of).where(counted_line())))


def derive_customer_features(state: DataFrame, as_of: date, keep: Sequence[str] = ()) -> DataFrame:
    """Customer features as of a date from `customer_state` rows. Grain: one row per customer.

    `keep` names extra columns of `state` to carry through (bookkeeping).
    """
    as_of_col = F.lit(as_of)
    return (
        state.withColumn("recency_days", F.datediff(as_of_col, F.col("last_order_date")))
        .withColumn("tenure_days", F.datediff(as_of_col, F.col("first_order_date")))
        .withColumn(
            "orders_per_week",
            F.col("frequency") / F.greatest(F.col("tenure_days"), F.lit(7)) * 7.0,
        )
        .select(
            "customer_id", "recency_days", "frequency", "monetary", "tenure_days", "avg_basket",
            "avg_lines_per_order", "return_rate", "orders_per_week", "first_order_date",
            "last_order_date", "top_category", "category_mix", *keep,
        )
    )  # fmt: skip


def customer_features(lines: DataFrame, as_of: date) -> DataFrame:
    """RFM, tenure, basket and category mix as of a date. Grain: one row per customer with a
    sold line on or before `as_of`."""
    state = customer_state(lines, as_of)
    return derive_customer_features(state.where(F.col(CUSTOMER_VISIBLE) > 0), as_of)


def _decay(days: Column, half_life_days: float | Column) -> Column:
    half_life = half_life_days if isinstance(half_life_days, Column) else F.lit(half_life_days)
    return F.pow(F.lit(0.5), days / half_life)


def interactions(lines: DataFrame, as_of: date, half_life_days: float) -> DataFrame:
    """Customer x product implicit strength with recency decay. Grain: (customer_id, product_id)
    with a sold line on or before `as_of`.

    `strength = sum(quantity * 0.5^(age_days / half_life_days))` over counted lines (returns
    subtract), with ages counted to `as_of`, floored at 0 and rounded to 6 decimals: one
    aggregate pass over the lines.
    """
    counted = lines_up_to(lines, as_of).where(counted_line())
    age = F.datediff(F.lit(as_of), F.col("order_date"))
    grouped = counted.groupBy("customer_id", "product_id").agg(
        F.first("category", ignorenulls=True).alias("category"),
        F.count_distinct(F.when(sold_line(), F.col("order_id"))).alias(INTERACTION_VISIBLE),
        F.sum(F.when(sold_line(), F.col("quantity")).otherwise(0)).cast("long").alias("quantity"),
        F.sum(F.when(returned_line(), -F.col("quantity")).otherwise(0))
        .cast("long")
        .alias("returned_units"),
        F.min(F.when(sold_line(), F.col("order_date"))).alias("first_purchase_date"),
        F.max(F.when(sold_line(), F.col("order_date"))).alias("last_purchase_date"),
        F.sum(F.col("quantity") * _decay(age, half_life_days)).alias("_strength"),
    )
    return (
        grouped.where(F.col(INTERACTION_VISIBLE) > 0)
        .withColumn("strength", F.round(F.greatest(F.col("_strength"), F.lit(0.0)), 6))
        .select(
            "customer_id", "product_id", "category", "n_purchases", "quantity", "returned_units",
            "first_purchase_date", "last_purchase_date", "strength",
        )
    )  # fmt: skip


def with_run(df: DataFrame, as_of: date, run_id: str) -> DataFrame:
    """Adds the run bookkeeping columns every gold table carries."""
    return df.withColumn("as_of", F.lit(as_of)).withColumn("run_id", F.lit(run_id))
