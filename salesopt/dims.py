"""Reference data: landing customers/products/inventory -> silver, PII pseudonymised.

Customer name, email and phone never reach silver in clear: each becomes a keyed SHA-256
pseudonym `sha2(key || '|' || normalised value)`, with the key from the environment variable
named by `clean.pii_key_env`. Without it the refresh stops, except under `salesopt demo`, which
uses a fixed, logged demo key. Equal inputs give equal pseudonyms (joins still work); without the
key they cannot be reversed or recomputed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt.config import Settings
from salesopt.errors import InputError, SetupError
from salesopt.io.tables import Warehouse

log = logging.getLogger(__name__)

DEMO_PII_KEY = "salesopt-demo-key-not-secret"
PII_FIELDS = ("name", "email", "phone")
PRODUCT_COLUMNS = {
    "product_id": "string",
    "product_name": "string",
    "category": "string",
    "unit_cost": "double",
    "list_price": "double",
    "launch_date": "date",
    "status": "string",
}
CUSTOMER_COLUMNS = ("customer_id", "name", "email", "phone", "region", "signup_date")


def pii_key(settings: Settings) -> str:
    """The pseudonymisation key: from the environment; the demo key only under `demo`."""
    key = os.environ.get(settings.clean.pii_key_env, "")
    if key:
        return key
    if settings.demo:
        log.warning(
            "using the public demo PII key (set %s for real data)", settings.clean.pii_key_env
        )
        return DEMO_PII_KEY
    raise SetupError(
        f"PII key missing: set the environment variable {settings.clean.pii_key_env} "
        "(a secret, never a committed file) before refreshing real data"
    )


def pseudonym(value: Column, key: str) -> Column:
    """Keyed SHA-256 of the trimmed, lower-cased value (null stays null)."""
    norm = F.lower(F.trim(value))
    return F.when(norm.isNull() | (norm == ""), F.lit(None)).otherwise(
        F.sha2(F.concat(F.lit(key), F.lit("|"), norm), 256)
    )


def read_reference(spark: SparkSession, folder: str, required: tuple[str, ...]) -> DataFrame:
    """All CSV files (with header) under a landing folder, as strings."""
    try:
        df = spark.read.option("header", "true").option("recursiveFileLookup", "true").csv(folder)
    except Exception as exc:
        raise InputError(f"reference folder missing or unreadable: {folder}") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{folder}: missing columns {missing} (see docs/source-contract.md)")
    return df


def products_silver(raw: DataFrame) -> DataFrame:
    """Typed products, one row per product_id (the last row read wins on duplicates)."""
    typed = raw.select(
        *[F.trim(F.col(c)).try_cast(t).alias(c) for c, t in PRODUCT_COLUMNS.items()]
    ).where(F.col("product_id").isNotNull())
    return (
        typed.groupBy("product_id")
        .agg(
            *[
                F.max_by(c, F.col("launch_date")).alias(c)
                for c in PRODUCT_COLUMNS
                if c != "product_id"
            ]
        )
        .select(*PRODUCT_COLUMNS)
    )


def customers_silver(raw: DataFrame, key: str) -> DataFrame:
    """Customers with PII replaced by pseudonyms. Grain: one row per customer_id."""
    return (
        raw.where(F.col("customer_id").isNotNull())
        .groupBy(F.trim("customer_id").alias("customer_id"))
        .agg(*[F.max(c).alias(c) for c in CUSTOMER_COLUMNS if c != "customer_id"])
        .select(
            "customer_id",
            *[pseudonym(F.col(c), key).alias(f"{c}_hash") for c in PII_FIELDS],
            F.col("region"),
            F.to_date("signup_date").alias("signup_date"),
        )
    )


def inventory_silver(raw: DataFrame) -> DataFrame:
    """On-hand snapshots. Grain: one row per (snapshot_date, product_id)."""
    return (
        raw.select(
            F.to_date("snapshot_date").alias("snapshot_date"),
            F.trim("product_id").alias("product_id"),
            F.col("on_hand").try_cast("long").alias("on_hand"),
        )
        .where(F.col("snapshot_date").isNotNull() & F.col("product_id").isNotNull())
        .groupBy("snapshot_date", "product_id")
        .agg(F.max("on_hand").alias("on_hand"))
    )


def _exists(spark: SparkSession, folder: str) -> bool:
    """True when an optional landing folder exists and holds at least one file."""
    local = folder.removeprefix("file:")
    if "://" not in local:
        return Path(local).is_dir() and any(Path(local).rglob("*.csv"))
    try:
        return bool(
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .load(folder)
            .limit(1)
            .count()
        )
    except Exception:
        return False


def refresh_dims(
    spark: SparkSession, settings: Settings, warehouse: Warehouse
) -> dict[str, int | None]:
    """Rewrites silver/products, silver/customers (and silver/inventory if landed)."""
    landing = settings.paths.landing.rstrip("/")
    products = products_silver(
        read_reference(spark, f"{landing}/products", ("product_id", "category"))
    )
    customers = customers_silver(
        read_reference(spark, f"{landing}/customers", ("customer_id",)), pii_key(settings)
    )
    versions = {
        "silver/products": warehouse.overwrite(products, "silver", "products"),
        "silver/customers": warehouse.overwrite(customers, "silver", "customers"),
    }
    if _exists(spark, f"{landing}/inventory"):
        inventory = inventory_silver(
            read_reference(
                spark, f"{landing}/inventory", ("snapshot_date", "product_id", "on_hand")
            )
        )
        versions["silver/inventory"] = warehouse.overwrite(inventory, "silver", "inventory")
    return versions
