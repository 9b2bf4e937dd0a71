"""Grocery-like purchase histories with planted repurchase cycles and drifting tastes.

For recommendation tests and benches: the lines tell repurchase, discovery and popularity apart,
which the order generator's independent draws do not. Built in Spark from hashed draws (same
seed, same rows). Per customer and category the customer buys (80 % of pairs):

- one to four *staple* products, each every `cycle` days: the category's planted cycle
  (CYCLE_DAYS) times a personal factor exp(0.25 z), from a random phase after the customer's
  first day, with a 15 % jitter;
- 30 % of staples change to another product on a random day (taste drift); 20 % stop on a
  random day (a lapse);
- each purchase is the staple with probability 0.8, else a *discovery*: a product of the same
  category drawn from the customer's two favourite taste groups (80 %) or any group, with a
  popularity skew inside the group.

With `repurchase=False` every customer buys 8-17 distinct products once each (discovery draws on
uniform days): nothing is re-bought. Grain of the result: one row per (order_id, line_no), with
the silver/order_lines columns the recommend stage reads. A customer shops every 3 or 7 days:
purchases fall on the next shopping day, so an order holds several categories.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from salesopt.datagen.entities import CATEGORIES, normal, uniform

# planted repurchase cycle (days) of each category in CATEGORIES
CYCLE_DAYS = (7, 14, 28, 42, 56, 70, 91, 120)
TASTE_GROUPS = 10
BUYS_CATEGORY = 0.8
DRIFT_SHARE = 0.3
LAPSE_SHARE = 0.2
STAPLE_SHARE = 0.8


def _product(seed: int, salt: int, cat: Column, products: int, *keys: Column | str) -> Column:
    """A product of category `cat` from the customer's taste (favourite groups `g1`, `g2`)."""
    c, g = len(CATEGORIES), TASTE_GROUPS
    favourite = F.when(uniform(seed, salt, *keys) < 0.5, F.col("g1")).otherwise(F.col("g2"))
    group = F.when(uniform(seed, salt + 1, *keys) < 0.8, favourite).otherwise(
        F.floor(uniform(seed, salt + 2, *keys) * g)
    )
    first = cat + c * group  # products p with p % (c * g) == first form the (category, group) cell
    cell = F.floor((products - 1 - first) / (c * g)) + 1
    rank = F.floor(cell * F.pow(uniform(seed, salt + 3, *keys), F.lit(2.0)))
    return (first + c * g * rank).cast("long")


def planted_baskets(
    spark: SparkSession,
    customers: int,
    products: int,
    days: int,
    start: date,
    seed: int = 7,
    repurchase: bool = True,
) -> DataFrame:
    """Order lines with planted repurchase cycles (see the module doc)."""
    if products < len(CATEGORIES) * TASTE_GROUPS:
        raise ValueError(
            f"planted_baskets needs at least {len(CATEGORIES) * TASTE_GROUPS} products"
        )
    cid = F.col("cid")
    people = (
        spark.range(customers)
        .withColumnRenamed("id", "cid")
        .select(
            "cid",
            F.floor(uniform(seed, 1, cid) * TASTE_GROUPS).alias("g1"),
            F.floor(uniform(seed, 2, cid) * TASTE_GROUPS).alias("g2"),
            F.floor(uniform(seed, 3, cid) * days * 0.5).cast("int").alias("first_day"),
            F.when(uniform(seed, 4, cid) < 0.5, 3).otherwise(7).alias("trip"),
        )
        .withColumn("trip_offset", F.floor(uniform(seed, 5, cid) * F.col("trip")))
    )
    events = (
        _cycled(people, seed, days, products) if repurchase else _once(people, seed, days, products)
    )
    per_order = Window.partitionBy("order_id").orderBy("product_id")
    trips = F.col("trip") * F.ceil((F.col("day") - F.col("trip_offset")) / F.col("trip"))
    return (
        events.withColumn("day", (trips + F.col("trip_offset")).cast("int"))
        .where((F.col("day") >= 0) & (F.col("day") < days))
        .select(
            F.format_string("B%07d-%04d", cid, F.col("day")).alias("order_id"),
            F.format_string("C%07d", cid).alias("customer_id"),
            F.format_string("P%05d", F.col("pid") + 1).alias("product_id"),
            F.element_at(F.array(*map(F.lit, CATEGORIES)), F.col("cat").cast("int") + 1).alias(
                "category"
            ),
            F.date_add(F.lit(start), F.col("day").cast("int")).alias("order_date"),
            F.col("quantity"),
        )
        .groupBy("order_id", "customer_id", "product_id", "category", "order_date")
        .agg(F.sum("quantity").cast("int").alias("quantity"))
        .select(
            "order_id",
            F.row_number().over(per_order).alias("line_no"),
            "customer_id",
            "product_id",
            "category",
            "order_date",
            "quantity",
            (F.col("quantity") * 2.0).alias("net_amount"),
            F.lit(False).alias("is_cancelled"),
            F.lit(False).alias("is_return"),
        )
    )


def _cycled(people: DataFrame, seed: int, days: int, products: int) -> DataFrame:
    """Staple purchases every cycle days, some drifting or lapsing, some discoveries."""
    cid, cat, j, k = F.col("cid"), F.col("cat"), F.col("j"), F.col("k")
    cycles = F.array(*map(F.lit, CYCLE_DAYS))
    cycle = F.element_at(cycles, cat.cast("int") + 1) * F.exp(0.25 * normal(seed, 10, cid, cat, j))
    drifts = uniform(seed, 12, cid, cat, j) < DRIFT_SHARE
    lapses = uniform(seed, 14, cid, cat, j) < LAPSE_SHARE
    pairs = (
        people.crossJoin(F.broadcast(people.sparkSession.range(len(CATEGORIES)).toDF("cat")))
        .where(uniform(seed, 11, cid, cat) < BUYS_CATEGORY)
        .withColumn(
            "j", F.explode(F.sequence(F.lit(1), 1 + F.floor(uniform(seed, 17, cid, cat) * 4)))
        )
        .withColumn("cycle", cycle)
        .withColumn("phase", F.col("first_day") + uniform(seed, 16, cid, cat, j) * F.col("cycle"))
        .withColumn(
            "end_day",
            F.when(lapses, F.floor(uniform(seed, 15, cid, cat, j) * days)).otherwise(days),
        )
        .withColumn(
            "switch_day",
            F.when(drifts, F.floor(uniform(seed, 13, cid, cat, j) * days)).otherwise(days),
        )
        .withColumn("staple", _product(seed, 20, cat, products, cid, cat, j))
        .withColumn("staple2", _product(seed, 30, cat, products, cid, cat, j))
        .withColumn("n", F.floor((F.col("end_day") - F.col("phase")) / F.col("cycle")).cast("int"))
        .where(F.col("n") >= 0)
    )
    jitter = 0.15 * F.col("cycle") * normal(seed, 40, cid, cat, j, k)
    staple = F.when(F.col("day") >= F.col("switch_day"), F.col("staple2")).otherwise(
        F.col("staple")
    )
    return (
        pairs.withColumn("k", F.explode(F.sequence(F.lit(0), F.col("n"))))
        .withColumn("day", F.round(F.col("phase") + k * F.col("cycle") + jitter).cast("int"))
        .where(F.col("day") < F.col("end_day"))
        .withColumn(
            "pid",
            F.when(uniform(seed, 50, cid, cat, j, k) < STAPLE_SHARE, staple).otherwise(
                _product(seed, 60, cat, products, cid, cat, j, k)
            ),
        )
        .withColumn("quantity", 1 + F.floor(uniform(seed, 70, cid, cat, j, k) * 2))
        .select("cid", "trip", "trip_offset", "cat", "day", "pid", "quantity")
    )


def _once(people: DataFrame, seed: int, days: int, products: int) -> DataFrame:
    """Every customer buys 8-17 distinct products, each once."""
    cid, j = F.col("cid"), F.col("j")
    cat = F.floor(uniform(seed, 80, cid, j) * len(CATEGORIES))
    first = Window.partitionBy("cid", "pid").orderBy("day", "j")
    return (
        people.withColumn(
            "j",
            F.explode(F.sequence(F.lit(0), 7 + F.floor(uniform(seed, 81, cid) * 10).cast("int"))),
        )
        .withColumn("cat", cat)
        .withColumn("pid", _product(seed, 90, F.col("cat"), products, cid, j))
        .withColumn(
            "day",
            (
                F.col("first_day")
                + F.floor(uniform(seed, 95, cid, j) * (days - F.col("first_day")))
            ).cast("int"),
        )
        .withColumn("quantity", F.lit(1))
        .withColumn("first", F.row_number().over(first))
        .where(F.col("first") == 1)
        .select("cid", "trip", "trip_offset", "cat", "day", "pid", "quantity")
    )
