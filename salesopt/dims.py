"""Reference data: landing customers/products/inventory -> silver, PII pseudonymised.

Customer name, email and phone never reach silver in clear: each becomes a keyed SHA-256
pseudonym `sha2(key || '|' || normalised value)`, with the key from the environment variable
named by `clean.pii_key_env`. Without it the refresh stops, except under `salesopt demo`, which
uses a fixed, logged demo key. Equal inputs give equal pseudonyms (joins still work); without the
key they cannot be reversed or recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt.config import Settings
from salesopt.errors import InputError, SetupError
from salesopt.io.tables import Warehouse, list_file_stats

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
    """True when an optional landing folder exists and holds at least one CSV file."""
    return any(path.endswith(".csv") for path, _, _ in list_file_stats(spark, folder))


# Bump when a dimension transformation changes: every table is then rebuilt once.
DIMS_FORMAT = "dims-v1"


def source_fingerprint(spark: SparkSession, folder: str, extra: str = "") -> str:
    """SHA-256 over the data files under `folder`: path, size and modification time of each.

    Listed with `list_file_stats` (Spark's `binaryFile` metadata: any file system, Spark
    Connect included), without reading the files. `extra` folds in other inputs of the
    transformation (e.g. the PII key).
    """
    digest = hashlib.sha256(f"{DIMS_FORMAT}\n{extra}\n".encode())
    for path, size, modified in list_file_stats(spark, folder):
        digest.update(f"{path}|{size}|{modified}\n".encode())
    return f"{DIMS_FORMAT}:{digest.hexdigest()}"


def _refresh_one(
    spark: SparkSession,
    warehouse: Warehouse,
    name: str,
    fingerprint: str,
    build: Callable[[], DataFrame],
) -> tuple[int | None, bool]:
    """Rewrites silver/<name> unless its last write came from the same source files."""
    if warehouse.last_user_metadata(spark, "silver", name) == fingerprint:
        return warehouse.version(spark, "silver", name), False
    return warehouse.overwrite(build(), "silver", name, user_metadata=fingerprint), True


def refresh_dims(
    spark: SparkSession, settings: Settings, warehouse: Warehouse
) -> dict[str, int | None]:
    """Rewrites silver/products, silver/customers (and silver/inventory if landed).

    A table is rewritten only when its landing files changed since its last write (path, size
    or modification time of any file, files added or removed), when the PII key changed (for
    customers), or when its latest commit is not such a write (e.g. after `salesopt maintain`).
    The fingerprint of the source files is stored in the commit's `userMetadata`.
    """
    landing = settings.paths.landing.rstrip("/")
    key = pii_key(settings)
    key_id = hashlib.sha256(f"pii-key|{key}".encode()).hexdigest()
    specs: list[tuple[str, str, str, Callable[[], DataFrame]]] = [
        (
            "products",
            f"{landing}/products",
            "",
            lambda: products_silver(
                read_reference(spark, f"{landing}/products", ("product_id", "category"))
            ),
        ),
        (
            "customers",
            f"{landing}/customers",
            key_id,
            lambda: customers_silver(
                read_reference(spark, f"{landing}/customers", ("customer_id",)), key
            ),
        ),
    ]
    if _exists(spark, f"{landing}/inventory"):
        specs.append(
            (
                "inventory",
                f"{landing}/inventory",
                "",
                lambda: inventory_silver(
                    read_reference(
                        spark, f"{landing}/inventory", ("snapshot_date", "product_id", "on_hand")
                    )
                ),
            )
        )
    versions: dict[str, int | None] = {}
    unchanged = []
    for name, folder, extra, build in specs:
        fingerprint = source_fingerprint(spark, folder, extra)
        versions[f"silver/{name}"], rewritten = _refresh_one(
            spark, warehouse, name, fingerprint, build
        )
        if not rewritten:
            unchanged.append(name)
    if unchanged:
        log.info(
            "dimension files unchanged since the last load: kept silver/%s", ", ".join(unchanged)
        )
    return versions
