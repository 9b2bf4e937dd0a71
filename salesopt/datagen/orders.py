"""Synthetic order lines: planted customer behaviour and product demand, then dirt.

Orders come from each customer's planted rate over their active window, through a channel drawn
from the customer's segment's channel shares; each line's product from the customer's taste (a
latent group chosen by the customer's factors, then a popularity-skewed product inside it).
Product demand dynamics (trend, weekly and yearly seasonality, price elasticity scaled by the
customer's segment sensitivity, the segment's promotion lift) are planted by thinning lines with
probability m(p, t) / cap(p) and, where m exceeds the cap, by scaling the quantity, so expected
units are proportional to m(p, t).
"""

from __future__ import annotations

import functools
import math
import operator
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from salesopt.datagen.entities import n_groups, normal, promo_pct, shelf_price, uniform

DIRT_KINDS = (
    "duplicate",
    "resend",
    "null_required",
    "malformed",
    "bad_price",
    "unknown_product",
    "future_ts",
    "late",
)
CHANNELS = ("web", "store", "app")
ZIPF_POWER = 0.2  # within-group popularity density ~ rank^-(1 - ZIPF_POWER)


def _orders(customers: DataFrame, seed: int) -> DataFrame:
    """Orders per customer drawn from the planted rate. Grain: one row per order."""
    active = (F.col("active_end") - F.col("active_start")).cast("double")
    lam = F.col("orders_per_week") / 7.0 * active
    n_orders = F.greatest(
        F.lit(0), F.round(lam + F.sqrt(lam) * normal(seed, 60, "cid")).cast("int")
    )
    k = F.col("k")
    return (
        customers.withColumn("k", F.explode(F.sequence(F.lit(1), F.greatest(n_orders, F.lit(1)))))
        .where(n_orders > 0)
        .withColumn(
            "day",
            (F.col("active_start") + F.floor(uniform(seed, 61, "cid", k) * active)).cast("int"),
        )
        .withColumn("order_id", F.format_string("O%08d-%04d", F.col("cid"), k))
        .withColumn("second", (7 * 3600 + uniform(seed, 62, "cid", k) * 15 * 3600).cast("int"))
        .withColumn(
            "n_lines",
            F.greatest(
                F.lit(1),
                F.round(
                    F.col("lines_per_order")
                    + F.sqrt(F.col("lines_per_order")) * normal(seed, 63, "cid", k)
                ).cast("int"),
            ),
        )
        .withColumn("_u_channel", uniform(seed, 64, "cid", k))
        .withColumn(  # the segment's planted channel shares (web, store, app)
            "channel",
            F.when(F.col("_u_channel") < F.col("web_share"), F.lit(CHANNELS[0]))
            .when(
                F.col("_u_channel") < F.col("web_share") + F.col("store_share"), F.lit(CHANNELS[1])
            )
            .otherwise(F.lit(CHANNELS[2])),
        )
        .drop("_u_channel")
    )


# Running sum of a customer's taste vector; computed once per customer, not per line.
CUMULATIVE_FACTORS = (
    "transform(factors, (x, i) -> aggregate(slice(factors, 1, i + 1), 0D, (a, y) -> a + y))"
)


def _with_product(lines: DataFrame, seed: int, groups: int, products: int) -> DataFrame:
    """Adds `pid` to each line: latent group from the customer's taste, then a rank in it.

    Needs the customer's `cum_factors` (CUMULATIVE_FACTORS). The group is the number of running
    sums below a uniform draw scaled to their total, written with plain array lookups so that
    whole-stage code generation covers it (a lambda per line would be interpreted, row by row).
    Each intermediate is its own column, so an expression used more than once is computed once.
    """
    cum = F.col("cum_factors")
    u_group = uniform(seed, 70, "order_id", "line_no") * F.element_at(cum, groups)
    below = [(F.element_at(cum, i) < F.col("_u_group")).cast("int") for i in range(1, groups + 1)]
    group, in_group = F.col("_group"), F.col("_in_group")
    top = F.pow(in_group + 1.0, F.lit(ZIPF_POWER)) - 1.0
    rank = (
        F.floor(F.pow(1.0 + uniform(seed, 71, "order_id", "line_no") * top, 1.0 / ZIPF_POWER)) - 1
    )
    return (
        lines.withColumn("_u_group", u_group)
        .withColumn("_group", functools.reduce(operator.add, below))
        .withColumn("_in_group", F.floor((products - 1 - group) / groups) + 1)
        .withColumn("_rank", F.least(F.greatest(rank, F.lit(0)), in_group - 1))
        # Never null; coalesce tells the optimizer so, or the join with the products infers a
        # `pid IS NOT NULL` filter and pushes it below these columns with every one of them
        # inlined, computing the product choice again for the filter.
        .withColumn(
            "pid", F.coalesce((F.col("_rank") * groups + group + 1).cast("long"), F.lit(-1))
        )
        .drop("_u_group", "_group", "_in_group", "_rank")
    )


def _demand_multiplier(start_doy: int, days: int) -> tuple[Column, Column]:
    """m(p, t) and the per-product cap used for thinning (both need product and day columns)."""
    centred_years = (F.col("day") - days / 2.0) / 365.0
    trend = F.greatest(F.lit(0.2), 1.0 + F.col("trend") * centred_years)
    dow = F.dayofweek(F.col("order_date")).cast("double")
    weekly = 1.0 + F.col("weekly_amp") * F.cos(2 * math.pi * (dow - 7.0) / 7.0)
    yearly = 1.0 + F.col("yearly_amp") * F.sin(
        2 * math.pi * (F.col("day") + start_doy - F.col("yearly_phase")) / 365.25
    )
    # the customer's segment scales the product's elasticity and sets the promotion's lift
    elasticity = F.col("elasticity") * F.col("price_sensitivity")
    price = F.pow(F.col("net_price") / F.col("list_price"), elasticity)
    promo = F.when(F.col("promo_pct") > 0, F.col("promo_lift")).otherwise(F.lit(1.0))
    cap = (
        (1.0 + F.abs(F.col("trend")) * days / 2.0 / 365.0)
        * (1.0 + F.col("weekly_amp"))
        * (1.0 + F.col("yearly_amp"))
    )
    return trend * weekly * yearly * price * promo, cap


def clean_lines(
    customers: DataFrame, products: DataFrame, seed: int, start: str, days: int, n_products: int
) -> DataFrame:
    """Order lines before dirt. Grain: one row per (order_id, line_no)."""
    groups = n_groups(n_products)
    start_doy = date.fromisoformat(start).timetuple().tm_yday
    lines = (
        _orders(customers.withColumn("cum_factors", F.expr(CUMULATIVE_FACTORS)), seed)
        .withColumn("line_no", F.explode(F.sequence(F.lit(1), F.col("n_lines"))))
        .transform(lambda df: _with_product(df, seed, groups, n_products))
        .select(
            "order_id",
            "line_no",
            "cid",
            "customer_id",
            "store_id",
            "day",
            "second",
            "channel",
            "pid",
            "price_sensitivity",
            "promo_lift",
        )
        .join(F.broadcast(products.drop("product_id")), on="pid", how="inner")
        .withColumn("product_id", F.format_string("P%05d", F.col("pid")))
        .where((F.col("day") >= F.col("launch_day")) & (F.col("day") < F.col("end_day")))
        .withColumn("order_date", F.date_add(F.lit(start).cast("date"), F.col("day")))
        .withColumn("unit_price", shelf_price(seed, F.col("pid"), F.col("day")))
        .withColumn("promo_pct", promo_pct(seed, F.col("pid"), F.col("day")))
        .withColumn("net_price", F.col("unit_price") * (1 - F.col("promo_pct")))
    )
    m, cap = _demand_multiplier(start_doy, days)
    ratio = m / cap
    base_qty = 1 + F.floor(
        -F.log(F.greatest(uniform(seed, 72, "order_id", "line_no"), F.lit(1e-9))) * 0.6
    )
    scaled_qty = F.floor(base_qty * ratio + uniform(seed, 73, "order_id", "line_no"))
    return (
        lines.withColumn("ratio", ratio)
        .where(uniform(seed, 74, "order_id", "line_no") < F.col("ratio"))
        .withColumn(
            "quantity",
            F.when(F.col("ratio") > 1, F.greatest(scaled_qty, F.lit(1)))
            .otherwise(base_qty)
            .cast("int"),
        )
        .withColumn(
            "order_ts",
            F.timestamp_seconds(
                F.unix_timestamp(F.col("order_date").cast("timestamp")) + F.col("second")
            ),
        )
        .withColumn(
            "discount", F.round(F.col("unit_price") * F.col("promo_pct") * F.col("quantity"), 2)
        )
        .withColumn(
            "promo",  # a promotion id on promotion lines, absent otherwise
            F.when(
                F.col("promo_pct") > 0,
                F.format_string("PR-%s-%d", F.col("product_id"), (F.col("day") / 7).cast("int")),
            ),
        )
        .select(
            "order_id", "line_no", "customer_id", "product_id", "quantity", "unit_price",
            "discount", "order_ts", "order_date", "channel", "store_id", "promo", "day",
        )
    )  # fmt: skip
