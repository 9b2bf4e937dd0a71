"""Gold snapshots from silver order lines: customer features and interactions.

Pure `DataFrame -> DataFrame` functions (grains in docs/tables.md); `salesopt.gold` reads silver
and writes gold in one place (the sales series are in `salesopt.sales`). Customer features and
interactions are `as_of` snapshots that use only lines on or before `as_of`. Each
snapshot is split into a calendar-free state (`customer_state`, `interaction_state`) and the
columns derived from it for a date (`derive_*`), so stored state rows stay valid until their
lines change (`salesopt.snapshots`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

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


def lines_up_to(lines: DataFrame, as_of: date) -> DataFrame:
    """Lines that happened on or before `as_of` (no future information in a snapshot)."""
    return lines.where(F.col("order_date") <= F.lit(as_of))


# the silver columns the snapshot states read (customer_state, interaction_state)
SNAPSHOT_INPUT = (
    "customer_id", "product_id", "order_id", "order_date", "quantity", "net_amount", "category",
    "is_cancelled",
)  # fmt: skip
CUSTOMER_STATE = (
    "customer_id", "frequency", "monetary", "first_order_date", "last_order_date", "avg_basket",
    "avg_lines_per_order", "return_rate", "top_category", "category_mix", "sold_lines",
    "sold_units", "returned_units", "category_revenue",
)  # fmt: skip
# the additive parts of a customer state: a later line only adds to them (`add_customer_lines`)
CUSTOMER_COMPONENTS = (
    "customer_id", "frequency", "monetary", "first_order_date", "last_order_date", "sold_lines",
    "sold_units", "returned_units", "category_revenue",
)  # fmt: skip
# a stored state row is part of the snapshot when this count is positive (a sold line); rows of
# keys whose counted lines are all returns are kept as state, so later lines can be added to them
CUSTOMER_VISIBLE = "frequency"
INTERACTION_VISIBLE = "n_purchases"
INTERACTION_STATE = (
    "customer_id", "product_id", "category", "n_purchases", "quantity", "returned_units",
    "first_purchase_date", "last_purchase_date", "strength_anchor_date", "strength_at_anchor",
)  # fmt: skip


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
    columns (recency, tenure, orders per week) for any later date until the customer's lines
    change. The state keeps its additive components (`sold_lines`, `sold_units`,
    `returned_units`, `category_revenue`) so later lines can be added (`add_customer_lines`).
    Grain: every customer with a counted line, also when none of them is a sale (frequency 0:
    not part of the features, kept so that a first sale is added to the earlier returns).
    """
    return _finish_customer(_customer_components(lines_up_to(lines, as_of).where(counted_line())))


def _o(c: str) -> Column:
    """Column `c` of the prior state side (alias `o`) in `add_*_lines`."""
    return F.col(f"o.{c}")


def _n(c: str) -> Column:
    """Column `c` of the later lines' components (alias `n`) in `add_*_lines`."""
    return F.col(f"n.{c}")


def _plus(c: str) -> Column:
    """Count `c` of the prior state (0 without a prior row) plus the later lines' count."""
    return (F.coalesce(_o(c), F.lit(0)) + _n(c)).alias(c)


def _empty_revenue() -> Column:
    return F.map_from_arrays(F.array().cast("array<string>"), F.array().cast("array<double>"))


def add_customer_lines(prior: DataFrame, later: DataFrame) -> DataFrame:
    """Customer states after adding `later` lines to `prior` states. Grain: customer.

    Exact when every line of `later` is dated after the lines `prior` was computed from and
    none of its sold orders has sold lines among them (`salesopt.snapshots` checks both). A
    customer without a `prior` row starts from the empty state (exact when it has no earlier
    counted line); customers without a counted line in `later` are not returned.
    """
    new = _customer_components(later.where(counted_line())).alias("n")
    old = prior.select(*CUSTOMER_COMPONENTS).alias("o")

    merged = F.map_zip_with(
        F.coalesce(_o("category_revenue"), _empty_revenue()),
        F.coalesce(_n("category_revenue"), _empty_revenue()),
        lambda _k, a, b: F.coalesce(a, F.lit(0.0)) + F.coalesce(b, F.lit(0.0)),
    )
    combined = new.join(old, on="customer_id", how="left").select(
        "customer_id",
        _plus("frequency"),
        F.round(F.coalesce(_o("monetary"), F.lit(0.0)) + _n("monetary"), 2).alias("monetary"),
        F.least(_o("first_order_date"), _n("first_order_date")).alias("first_order_date"),
        F.greatest(_o("last_order_date"), _n("last_order_date")).alias("last_order_date"),
        _plus("sold_lines"),
        _plus("sold_units"),
        _plus("returned_units"),
        F.when(_o("category_revenue").isNull() & _n("category_revenue").isNull(), None)
        .otherwise(F.map_from_entries(F.array_sort(F.map_entries(merged))))
        .alias("category_revenue"),
    )
    return _finish_customer(combined)


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


def _interaction_components(counted: DataFrame) -> DataFrame:
    """Per pair sums over counted lines, with the lines' (date, quantity) for the strength."""
    daily = F.struct(F.col("order_date").alias("d"), F.col("quantity").alias("q"))
    return counted.groupBy("customer_id", "product_id").agg(
        F.first("category", ignorenulls=True).alias("category"),
        F.count_distinct(F.when(sold_line(), F.col("order_id"))).alias("n_purchases"),
        F.sum(F.when(sold_line(), F.col("quantity")).otherwise(0)).cast("long").alias("quantity"),
        F.sum(F.when(returned_line(), -F.col("quantity")).otherwise(0))
        .cast("long")
        .alias("returned_units"),
        F.min(F.when(sold_line(), F.col("order_date"))).alias("first_purchase_date"),
        F.max(F.when(sold_line(), F.col("order_date"))).alias("last_purchase_date"),
        F.max("order_date").alias("strength_anchor_date"),
        F.array_sort(F.collect_list(daily)).alias("_days"),
    )


def _decayed_sum(days: Column, anchor: Column, half_life_days: float | Column) -> Column:
    """sum(q * 0.5^((anchor - d) / half_life)) over an array of (d, q) structs."""
    return F.aggregate(
        days,
        F.lit(0.0),
        lambda acc, x: acc + x["q"] * _decay(F.datediff(anchor, x["d"]), half_life_days),
    )


def interaction_state(lines: DataFrame, as_of: date, half_life_days: float) -> DataFrame:
    """Customer x product purchase state up to `as_of`. Grain: (customer_id, product_id).

    The recency-weighted strength is kept at an anchor date, the pair's last counted line:
    `strength_at_anchor = sum(quantity * 0.5^((anchor - order_date) / half_life))`. At any later
    date D, `strength = strength_at_anchor * 0.5^((D - anchor) / half_life)`, so the row stays
    valid until the pair's lines change (`derive_interactions`). Like `customer_state`, pairs
    whose counted lines are all returns (`n_purchases` 0) are kept.
    """
    grouped = _interaction_components(lines_up_to(lines, as_of).where(counted_line()))
    anchor = F.col("strength_anchor_date")
    return grouped.withColumn(
        "strength_at_anchor", _decayed_sum(F.col("_days"), anchor, half_life_days)
    ).select(*INTERACTION_STATE)


def add_interaction_lines(prior: DataFrame, later: DataFrame, half_life_days: float) -> DataFrame:
    """Pair states after adding `later` lines to `prior` states. Grain: (customer_id, product_id).

    Same conditions as `add_customer_lines`. The strength moves to the new anchor:
    `prior strength * 0.5^((new anchor - prior anchor) / half_life)` plus the new lines' decayed
    quantities (equal to a recomputation up to floating-point rounding).
    """
    new = _interaction_components(later.where(counted_line())).alias("n")
    old = prior.select(*INTERACTION_STATE).alias("o")

    anchor = F.greatest(_o("strength_anchor_date"), _n("strength_anchor_date"))
    carried = F.coalesce(
        _o("strength_at_anchor")
        * _decay(F.datediff(anchor, _o("strength_anchor_date")), half_life_days),
        F.lit(0.0),
    )
    return new.join(old, on=["customer_id", "product_id"], how="left").select(
        "customer_id",
        "product_id",
        F.coalesce(_o("category"), _n("category")).alias("category"),
        _plus("n_purchases"),
        _plus("quantity"),
        _plus("returned_units"),
        F.least(_o("first_purchase_date"), _n("first_purchase_date")).alias("first_purchase_date"),
        F.greatest(_o("last_purchase_date"), _n("last_purchase_date")).alias("last_purchase_date"),
        anchor.alias("strength_anchor_date"),
        (carried + _decayed_sum(_n("_days"), anchor, half_life_days)).alias("strength_at_anchor"),
    )


def derive_interactions(
    state: DataFrame, as_of: date, half_life_days: float | Column, keep: Sequence[str] = ()
) -> DataFrame:
    """Interactions as of a date from `interaction_state` rows. Grain: (customer_id, product_id).

    `half_life_days` may be a column (stored snapshots carry the half-life they were built with);
    `keep` names extra columns of `state` to carry through.
    """
    decayed = F.col("strength_at_anchor") * _decay(
        F.datediff(F.lit(as_of), F.col("strength_anchor_date")), half_life_days
    )
    return state.withColumn("strength", F.round(F.greatest(decayed, F.lit(0.0)), 6)).select(
        "customer_id", "product_id", "category", "n_purchases", "quantity", "returned_units",
        "first_purchase_date", "last_purchase_date", "strength", *keep,
    )  # fmt: skip


def interactions(lines: DataFrame, as_of: date, half_life_days: float) -> DataFrame:
    """Customer x product implicit strength with recency decay. Grain: (customer_id, product_id)
    with a sold line on or before `as_of`."""
    state = interaction_state(lines, as_of, half_life_days)
    return derive_interactions(state.where(F.col(INTERACTION_VISIBLE) > 0), as_of, half_life_days)


def with_run(df: DataFrame, as_of: date, run_id: str) -> DataFrame:
    """Adds the run bookkeeping columns every gold table carries."""
    return df.withColumn("as_of", F.lit(as_of)).withColumn("run_id", F.lit(run_id))
