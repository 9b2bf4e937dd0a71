"""`salesopt generate`: synthetic landing files with planted truth, built in Spark.

Nothing is built in driver memory, so the generator scales with the cluster. Layout written under
`out` (documented in docs/source-contract.md):

    landing/orders/batch_date=<YYYY-MM-DD>[_late]/part-*.txt   JSON lines, one order line each
    landing/customers/part-*.csv                                customer dimension (with PII)
    landing/products/part-*.csv                                 product dimension
    truth/{customers,customer_factors,products,price_calendar,dirt,daily_units}   parquet
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt.clean import promo_flag
from salesopt.config import GenerateSettings
from salesopt.datagen.dirt import dirt_truth, landing_rows
from salesopt.datagen.entities import customers_frame, price_calendar, products_frame
from salesopt.datagen.inventory import write_inventory
from salesopt.datagen.orders import clean_lines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerateSummary:
    out: str
    customers: int
    products: int
    days: int
    start_date: str
    end_date: str
    seed: int
    dirty_rate: float
    clean_lines: int
    landing_lines: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _write_csv(df: DataFrame, path: str) -> None:
    df.coalesce(1).write.mode("overwrite").option("header", "true").csv(path)


def generate(spark: SparkSession, out: str, settings: GenerateSettings) -> GenerateSummary:
    """Writes landing files and planted truth under `out`; returns counts and timing."""
    started = time.perf_counter()
    seed, days, start = settings.seed, settings.days, settings.start_date.isoformat()
    out = out.rstrip("/")
    log.info(
        "generating %d customers x %d products over %d days (seed=%d, dirty_rate=%.3f) into %s",
        settings.customers, settings.products, days, seed, settings.dirty_rate, out,
    )  # fmt: skip
    products = products_frame(spark, seed, settings.products, days)
    customers = customers_frame(spark, seed, settings.customers, settings.products, days)
    start_date = settings.start_date
    landing_products = products.select(
        "product_id",
        F.concat(F.initcap("category"), F.lit(" item "), F.col("pid")).alias("product_name"),
        "category",
        "unit_cost",
        "list_price",
        F.date_add(F.lit(start).cast("date"), F.col("launch_day")).alias("launch_date"),
        F.when(F.col("end_day") < days, F.lit("discontinued"))
        .otherwise(F.lit("active"))
        .alias("status"),
    )
    landing_customers = customers.select(
        "customer_id",
        "name",
        "email",
        "phone",
        "region",
        F.date_sub(
            F.date_add(F.lit(start).cast("date"), F.col("active_start")),
            (F.col("cid") % 60).cast("int"),
        ).alias("signup_date"),
    )
    _write_csv(landing_products, f"{out}/landing/products")
    _write_csv(landing_customers, f"{out}/landing/customers")

    lines = clean_lines(customers, products, seed, start, days, settings.products).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    rows = landing_rows(lines, seed, start, days, settings.dirty_rate)
    (
        rows.repartition("batch")
        .sortWithinPartitions("batch", "order_id", "line_no", "copy")
        .select(F.col("batch").alias("batch_date"), "value")
        .write.mode("overwrite")
        .partitionBy("batch_date")
        .text(f"{out}/landing/orders")
    )
    truth = f"{out}/truth"
    customers.select(
        "customer_id", "segment", "orders_per_week", "lines_per_order", "active_start",
        "active_end",
        "primary_group", "secondary_group", "store_id", "price_sensitivity", "promo_lift",
        "web_share", "store_share", "app_share",
    ).write.mode("overwrite").parquet(f"{truth}/customers")  # fmt: skip
    customers.select("customer_id", "factors").write.mode("overwrite").parquet(
        f"{truth}/customer_factors"
    )
    daily = lines.groupBy("product_id", "order_date").agg(F.sum("quantity").alias("units"))
    daily.write.mode("overwrite").parquet(f"{truth}/daily_units")
    write_inventory(
        spark.read.parquet(f"{truth}/daily_units"), seed, start, days, f"{out}/landing/inventory"
    )
    base_demand = daily.groupBy("product_id").agg(
        (F.sum("units") / F.countDistinct("order_date")).alias("base_demand")
    )
    products.join(base_demand, "product_id", "left").select(
        "product_id", "taste_group", "group_rank", "category", "list_price", "unit_cost",
        F.coalesce("base_demand", F.lit(0.0)).alias("base_demand"), "trend", "weekly_amp",
        "yearly_amp", "yearly_phase", "elasticity", "price_volatility", "launch_day", "end_day",
    ).write.mode("overwrite").parquet(f"{truth}/products")  # fmt: skip
    price_calendar(spark, products, seed, days, start).write.mode("overwrite").parquet(
        f"{truth}/price_calendar"
    )
    dirt_truth(lines, seed, settings.dirty_rate).write.mode("overwrite").parquet(f"{truth}/dirt")
    n_clean = lines.count()
    n_landing = spark.read.text(f"{out}/landing/orders").count()
    lines.unpersist()
    summary = GenerateSummary(
        out=out,
        customers=settings.customers,
        products=settings.products,
        days=days,
        start_date=start,
        end_date=(start_date + timedelta(days=days - 1)).isoformat(),
        seed=seed,
        dirty_rate=settings.dirty_rate,
        clean_lines=n_clean,
        landing_lines=n_landing,
        seconds=round(time.perf_counter() - started, 2),
    )
    log.info(
        "generated %d landing lines (%d clean lines) in %.1fs", n_landing, n_clean, summary.seconds
    )
    return summary


def last_day(settings: GenerateSettings) -> date:
    """The last business date the generator covers (a natural `as_of` for the data)."""
    return settings.start_date + timedelta(days=settings.days - 1)


def planted_lines(spark: SparkSession, settings: GenerateSettings) -> DataFrame:
    """Clean generated order lines in the silver/order_lines contract, without dirt or files.

    For tests and benchmarks of downstream stages that should not depend on ingest. Grain: one
    row per (order_id, line_no); same seed -> same rows as the landing files' clean lines.
    """
    seed, days, start = settings.seed, settings.days, settings.start_date.isoformat()
    products = products_frame(spark, seed, settings.products, days)
    customers = customers_frame(spark, seed, settings.customers, settings.products, days)
    lines = clean_lines(customers, products, seed, start, days, settings.products)
    gross = F.col("quantity") * F.col("unit_price")
    return lines.join(
        F.broadcast(products.select("product_id", "category")), on="product_id", how="inner"
    ).select(
        "order_id",
        "line_no",
        "customer_id",
        "product_id",
        "category",
        "quantity",
        "unit_price",
        "discount",
        F.round(gross, 2).alias("gross_amount"),
        F.round(gross - F.col("discount"), 2).alias("net_amount"),
        "order_ts",
        "order_date",
        F.col("order_ts").alias("updated_at"),
        F.lit("completed").alias("status"),
        F.lit(False).alias("is_return"),
        F.lit(False).alias("is_cancelled"),
        "channel",
        "store_id",
        promo_flag().alias("promo"),
    )
