"""Planted customers, products and prices for the synthetic order logs.

Every random draw is a hash of (seed, salt, keys), not `rand()`, so the data is the same for a
seed whatever the partitioning or cluster size. Grain of each function's output is in its
docstring; the planted truth is documented in docs/source-contract.md.
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

_UNIT = 1 << 30
CATEGORIES = (
    "produce",
    "dairy",
    "bakery",
    "beverages",
    "snacks",
    "household",
    "personal_care",
    "frozen",
)
CONSUMABLE_CATEGORIES = ("produce", "dairy", "bakery", "beverages")
# segment: (share, orders per week, lines per order, active start as share of days (lo, hi),
#           active end as share of days (lo, hi))
SEGMENTS = {
    "champions": (0.10, 1.20, 9.0, (0.00, 0.20), (1.00, 1.00)),
    "loyal": (0.25, 0.45, 5.0, (0.00, 0.30), (1.00, 1.00)),
    "occasional": (0.35, 0.07, 2.5, (0.00, 0.50), (1.00, 1.00)),
    "lapsed": (0.15, 0.60, 5.0, (0.00, 0.20), (0.35, 0.60)),
    "new": (0.15, 0.70, 5.0, (0.90, 0.96), (1.00, 1.00)),
}
# Planted segment response: (price sensitivity, promotion lift, channel shares (web, store, app)).
# A line's price elasticity is the product's x the customer's segment sensitivity; a promotion
# multiplies the segment's demand by its lift beyond the price cut (docs/source-contract.md).
# Sensitivities average about 1 over the units each segment buys, so a product's elasticity over
# all its customers stays about the product's planted one.
SEGMENT_RESPONSE = {
    "champions": (0.8, 1.05, (0.25, 0.15, 0.60)),
    "loyal": (1.2, 1.15, (0.15, 0.70, 0.15)),
    "occasional": (2.0, 1.60, (0.60, 0.30, 0.10)),
    "lapsed": (1.3, 1.30, (0.35, 0.45, 0.20)),
    "new": (1.0, 1.25, (0.40, 0.20, 0.40)),
}
FIRST_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon")
LAST_NAMES = ("Smith", "Garcia", "Chen", "Okafor", "Novak", "Silva", "Kim", "Muller", "Rossi")
# Shelf-price regimes as multiples of a product's price volatility: list x (1 + volatility x r).
PRICE_REGIMES = (-1.0, -0.5, 0.0, 0.0, 0.5, 1.0)
STABLE_PRICE_SHARE = 0.15  # products whose shelf price barely moves (volatility 0.02)
REGIME_DAYS = 56
PROMO_WEEK_SHARE = 0.08
STORES = 12  # locations the customers shop at (store_id on every order)
STORE_SIZE_POWER = 2.0  # home store = floor(STORES * u ** power): store 1 the largest


def home_store(seed: int, cid: Column) -> Column:
    """A customer's store `S001`..: heavy-tailed sizes (with 12 stores the largest draws about
    29 % of customers, the smallest about 4 %)."""
    index = F.floor(F.pow(uniform(seed, 46, cid), F.lit(STORE_SIZE_POWER)) * STORES) + 1
    return F.format_string("S%03d", index.cast("int"))


def uniform(seed: int, salt: int, *cols: Column | str) -> Column:
    """A deterministic uniform draw in [0, 1) from a hash of the seed, a salt and key columns."""
    hashed = F.xxhash64(F.lit(seed), F.lit(salt), *cols)
    return F.pmod(hashed, F.lit(_UNIT)).cast("double") / F.lit(float(_UNIT))


def normal(seed: int, salt: int, *cols: Column | str) -> Column:
    """A deterministic standard normal draw (Box-Muller on two hashed uniforms)."""
    u1 = F.greatest(uniform(seed, salt, *cols), F.lit(1e-12))
    u2 = uniform(seed, salt + 1, *cols)
    return F.sqrt(-2.0 * F.log(u1)) * F.cos(2.0 * math.pi * u2)


def n_groups(products: int) -> int:
    """Number of latent taste groups: products are spread over them round-robin."""
    return max(2, min(12, products // 5))


def products_frame(spark: SparkSession, seed: int, products: int, days: int) -> DataFrame:
    """Planted products. Grain: one row per product."""
    groups = n_groups(products)
    pid = F.col("pid")
    return (
        spark.range(1, products + 1)
        .withColumnRenamed("id", "pid")
        .withColumn("product_id", F.format_string("P%05d", pid))
        .withColumn("taste_group", ((pid - 1) % groups).cast("int"))
        .withColumn("group_rank", ((pid - 1) / groups).cast("int"))
        .withColumn(
            "category",
            F.element_at(F.array(*map(F.lit, CATEGORIES)), F.col("taste_group") % 8 + 1),
        )
        .withColumn(
            "list_price", F.round(F.exp(F.lit(math.log(6.0)) + 0.6 * normal(seed, 10, pid)), 2)
        )
        .withColumn("list_price", F.greatest(F.col("list_price"), F.lit(0.49)))
        .withColumn(
            "unit_cost", F.round(F.col("list_price") * (0.45 + 0.25 * uniform(seed, 12, pid)), 2)
        )
        .withColumn("trend", F.round(0.25 * normal(seed, 13, pid), 4))
        .withColumn("weekly_amp", F.round(0.35 * uniform(seed, 15, pid), 4))
        .withColumn("yearly_amp", F.round(0.45 * uniform(seed, 16, pid), 4))
        .withColumn("yearly_phase", F.round(365.0 * uniform(seed, 17, pid), 1))
        .withColumn("elasticity", F.round(-0.5 - 2.0 * uniform(seed, 18, pid), 3))
        .withColumn(
            "price_volatility",
            F.when(uniform(seed, 23, pid) < STABLE_PRICE_SHARE, F.lit(0.02)).otherwise(
                F.round(0.08 + 0.17 * uniform(seed, 24, pid), 3)
            ),
        )
        .withColumn(
            "launch_day",
            F.when(
                uniform(seed, 19, pid) < 0.08, (uniform(seed, 20, pid) * days * 0.7).cast("int")
            ).otherwise(F.lit(0)),
        )
        .withColumn(
            "end_day",
            F.when(
                uniform(seed, 21, pid) < 0.03,
                (days * (0.5 + 0.3 * uniform(seed, 22, pid))).cast("int"),
            ).otherwise(F.lit(days)),
        )
        .withColumn("choice_weight", F.pow(F.col("group_rank") + 1.0, F.lit(-0.8)))
    )


def _segment_table(spark: SparkSession) -> DataFrame:
    """The planted segments' behaviour. Grain: one row per segment."""
    rows = [
        (i, name, rate, lines, start[0], start[1], end[0], end[1], *SEGMENT_RESPONSE[name][:2],
         *SEGMENT_RESPONSE[name][2])
        for i, (name, (_share, rate, lines, start, end)) in enumerate(SEGMENTS.items())
    ]  # fmt: skip
    schema = (
        "seg_idx int, segment string, seg_rate double, seg_lines double, start_lo double, "
        "start_hi double, end_lo double, end_hi double, price_sensitivity double, "
        "promo_lift double, web_share double, store_share double, app_share double"
    )
    return spark.createDataFrame(rows, schema)


def customers_frame(
    spark: SparkSession, seed: int, customers: int, products: int, days: int
) -> DataFrame:
    """Planted customers with segment behaviour, response and taste. Grain: one row per
    customer."""
    groups = n_groups(products)
    cid = F.col("cid")
    cum_shares, total = [], 0.0
    for share, *_rest in SEGMENTS.values():
        total += share
        cum_shares.append(total)
    seg_u = uniform(seed, 30, cid) * total
    seg_idx = (
        F.array_position(F.transform(F.array(*map(F.lit, cum_shares)), lambda c: c > seg_u), True)
        - 1
    )
    primary = (uniform(seed, 33, cid) * groups).cast("int")
    secondary = (primary + 1 + (uniform(seed, 34, cid) * (groups - 1)).cast("int")) % groups
    spread = 0.15 / groups
    factors = F.transform(
        F.sequence(F.lit(0), F.lit(groups - 1)),
        lambda g: (
            F.lit(spread)
            + F.when(g == F.col("primary_group"), F.lit(0.60)).otherwise(F.lit(0.0))
            + F.when(g == F.col("secondary_group"), F.lit(0.25)).otherwise(F.lit(0.0))
        ),
    )
    first = F.element_at(
        F.array(*map(F.lit, FIRST_NAMES)), (uniform(seed, 40, cid) * 10).cast("int") + 1
    )
    last = F.element_at(
        F.array(*map(F.lit, LAST_NAMES)), (uniform(seed, 41, cid) * 9).cast("int") + 1
    )
    start = F.col("start_lo") + (F.col("start_hi") - F.col("start_lo")) * uniform(seed, 39, cid)
    end = F.col("end_lo") + (F.col("end_hi") - F.col("end_lo")) * uniform(seed, 43, cid)
    return (
        spark.range(1, customers + 1)
        .withColumnRenamed("id", "cid")
        .withColumn("seg_idx", seg_idx.cast("int"))
        .join(F.broadcast(_segment_table(spark)), on="seg_idx", how="inner")
        .withColumn("customer_id", F.format_string("C%07d", cid))
        .withColumn("orders_per_week", F.col("seg_rate") * F.exp(0.25 * normal(seed, 35, cid)))
        .withColumn("lines_per_order", F.col("seg_lines") * F.exp(0.2 * normal(seed, 37, cid)))
        .withColumn("active_start", (start * days).cast("int"))
        .withColumn("active_end", F.least((end * days).cast("int"), F.lit(days)))
        .withColumn("primary_group", primary)
        .withColumn("secondary_group", secondary)
        .withColumn("factors", factors)
        .withColumn("name", F.concat_ws(" ", first, last))
        .withColumn(
            "email",
            F.lower(
                F.concat(
                    first, F.lit("."), last, F.lit("."), cid.cast("string"), F.lit("@example.com")
                )
            ),
        )
        .withColumn(
            "phone", F.format_string("+1-555-%07d", (uniform(seed, 44, cid) * 1e7).cast("int"))
        )
        .withColumn(
            "region",
            F.element_at(
                F.array(*map(F.lit, ("north", "south", "east", "west"))),
                (uniform(seed, 45, cid) * 4).cast("int") + 1,
            ),
        )
        .withColumn("store_id", home_store(seed, cid))
        .drop("seg_idx", "seg_rate", "seg_lines", "start_lo", "start_hi", "end_lo", "end_hi")
    )


def shelf_price(seed: int, pid: Column, day: Column) -> Column:
    """Shelf price on a day: list price x (1 + price_volatility x a regime that changes every
    ~8 weeks). Needs the product's `list_price` and `price_volatility` columns."""
    shifted = day + (uniform(seed, 50, pid) * REGIME_DAYS).cast("int")
    regime_index = (shifted / REGIME_DAYS).cast("int")
    regime = F.element_at(
        F.array(*map(F.lit, PRICE_REGIMES)),
        (uniform(seed, 51, pid, regime_index) * len(PRICE_REGIMES)).cast("int") + 1,
    )
    return F.round(F.col("list_price") * (1.0 + F.col("price_volatility") * regime), 2)


def promo_pct(seed: int, pid: Column, day: Column) -> Column:
    """Promotion discount share on a day: 15-25% off in a planted share of weeks, else 0."""
    week = (day / 7).cast("int")
    return F.when(
        uniform(seed, 52, pid, week) < PROMO_WEEK_SHARE,
        F.round(0.15 + 0.10 * uniform(seed, 53, pid, week), 2),
    ).otherwise(F.lit(0.0))


def price_calendar(
    spark: SparkSession, products: DataFrame, seed: int, days: int, start: str
) -> DataFrame:
    """Shelf price, promotion and net price per product and day. Grain: product x day."""
    pid, day = F.col("pid"), F.col("day")
    return (
        products.select("pid", "product_id", "list_price", "price_volatility")
        .crossJoin(spark.range(0, days).select(F.col("id").cast("int").alias("day")))
        .withColumn("date", F.date_add(F.lit(start).cast("date"), day))
        .withColumn("unit_price", shelf_price(seed, pid, day))
        .withColumn("promo_pct", promo_pct(seed, pid, day))
        .withColumn("promo", F.col("promo_pct") > 0)
        .withColumn("net_price", F.round(F.col("unit_price") * (1 - F.col("promo_pct")), 4))
        .select("product_id", "date", "unit_price", "promo", "promo_pct", "net_price")
    )
