"""Reference data: landing customers/products/inventory -> silver, PII pseudonymised.

Customer name, email and phone never reach silver in clear: each becomes a keyed pseudonym,
HMAC-SHA256(key, trimmed lower-case value) in hex, with the key from the environment variable
named by `clean.pii_key_env`, else from the Databricks secret `clean.pii_key_secret`. The key is
applied inside a pandas UDF, so it never appears in a Spark plan, the Spark UI or an event log.
Without it the refresh stops before Spark starts, except under `salesopt demo`, which uses a
fixed, logged demo key. Equal inputs give equal pseudonyms (joins still work); without the key
they cannot be reversed or recomputed.

Each file is read by its own header (columns matched by name, case-insensitive; absent optional
columns are NULL; unknown columns are reported, and kept in `_rescued_data` except for
customers). A key repeated within or across files keeps one whole row: the row of the most
recently modified file, then the last row in it (`latest_per_key`). The number of repeated rows
is logged, in the run summary and in `ops/quality_results` (rule `unique_key`, action `warn`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from salesopt import ops
from salesopt.config import Settings
from salesopt.errors import InputError, SetupError
from salesopt.io.tables import Warehouse, list_file_stats
from salesopt.quality import RuleResult

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
    """The pseudonymisation key: from the environment variable `clean.pii_key_env`, else from
    the Databricks secret `clean.pii_key_secret`; the demo key only under `demo`."""
    key = os.environ.get(settings.clean.pii_key_env, "")
    if key:
        return key
    if settings.clean.pii_key_secret:
        return _secret(settings.clean.pii_key_secret)
    if settings.demo:
        log.warning(
            "using the public demo PII key (set %s for real data)", settings.clean.pii_key_env
        )
        return DEMO_PII_KEY
    raise SetupError(
        f"PII key missing: set the environment variable {settings.clean.pii_key_env} "
        "(a secret, never a committed file) before refreshing real data"
    )


@functools.cache
def _secret(name: str) -> str:
    """A Databricks secret `<scope>/<key>`, read once per process with the runtime's dbutils."""
    scope, _, key = name.partition("/")
    if not os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        raise SetupError(
            f"clean.pii_key_secret={name} is read only on Databricks: elsewhere set the PII "
            "key's environment variable (clean.pii_key_env) instead"
        )
    try:
        from databricks.sdk.runtime import dbutils  # type: ignore[import-not-found]

        value = str(dbutils.secrets.get(scope=scope, key=key))
    except Exception as exc:  # the SDK raises its own error types, by workspace and version
        log.debug("reading secret %s failed", name, exc_info=True)
        raise SetupError(
            f"cannot read the PII key from secret {name} ({type(exc).__name__}): create it "
            f"(databricks secrets put-secret {scope} {key}) and grant the job's identity READ "
            f"on scope {scope}"
        ) from None
    if not value:
        raise SetupError(f"the PII key secret {name} is empty: put the key in it")
    return value


def hmac_hex(value: str | None, key: bytes) -> str | None:
    """HMAC-SHA256 of a normalised value (trimmed, lower-case) as hex; None for null or blank."""
    if value is None or pd.isna(value):
        return None
    norm = str(value).strip().lower()
    if not norm:
        return None
    return hmac.new(key, norm.encode("utf-8"), hashlib.sha256).hexdigest()


def pseudonym_udf(key: str) -> Callable[[Column], Column]:
    """A pandas UDF `pii_hmac(value)` = `hmac_hex(value, key)`.

    The key travels to the executors inside the serialised function, like any closure, and
    never as an expression: Spark plans, the Spark UI and event logs show `pii_hmac(email)`,
    not the key (a `sha2(concat(<key>, ...))` expression would print it).
    """
    secret = key.encode("utf-8")

    @F.pandas_udf("string")  # type: ignore[call-overload]
    def pii_hmac(values: pd.Series) -> pd.Series:
        return values.map(lambda v: hmac_hex(v, secret))

    return pii_hmac


@dataclass(frozen=True)
class Dimension:
    """A landing dimension: its columns (name -> Spark type), required columns and key."""

    name: str
    columns: dict[str, str]
    required: tuple[str, ...]
    key: tuple[str, ...]
    keep_unknown: bool  # unknown columns kept as `_rescued_data` (never for customers: PII)


PRODUCTS = Dimension("products", PRODUCT_COLUMNS, ("product_id", "category"), ("product_id",), True)
CUSTOMERS = Dimension(
    "customers",
    dict.fromkeys(CUSTOMER_COLUMNS, "string"),
    ("customer_id",),
    ("customer_id",),
    False,
)
INVENTORY = Dimension(
    "inventory",
    {"snapshot_date": "date", "product_id": "string", "on_hand": "long"},
    ("snapshot_date", "product_id", "on_hand"),
    ("snapshot_date", "product_id"),
    True,
)


@dataclass
class DimensionLoad:
    """What loading one dimension found: rows read, duplicate keys, unknown columns by file."""

    key: tuple[str, ...] = ()
    rows: int = 0
    duplicates: int = 0
    unknown_columns: dict[str, list[str]] = field(default_factory=dict)
    empty_files: list[str] = field(default_factory=list)

    def key_result(self, table: str) -> RuleResult:
        """The repeated keys as a `warn` quality result (recorded in ops/quality_results)."""
        expr = f"one row per ({', '.join(self.key)})"
        return RuleResult(table, "unique_key", expr, "warn", self.rows, self.duplicates)

    def to_dict(self) -> dict[str, object]:
        return {
            "rows_read": self.rows,
            "duplicate_key_rows": self.duplicates,
            "unknown_columns": self.unknown_columns,
            "empty_files": self.empty_files,
        }


def _header_name(name: str) -> str:
    """A header cell as matched against the contract: trimmed, lower-case, no byte-order mark."""
    return name.replace("\ufeff", "").strip().lower()


def _read_file(
    spark: SparkSession, path: str, modified_ms: int, dim: Dimension, load: DimensionLoad
) -> DataFrame | None:
    """One CSV file by its own header: contract columns by name (absent optional ones NULL),
    `_rescued_data` for unknown columns, and the file's path, modification time and row order."""
    df = spark.read.option("header", "true").csv(path)
    by_name = {_header_name(c): c for c in df.columns}
    if not by_name:
        load.empty_files.append(path)
        return None
    missing = [c for c in dim.required if c not in by_name]
    if missing:
        raise InputError(
            f"{path}: missing columns {missing} in its header (found {sorted(by_name)}); "
            "see docs/source-contract.md"
        )
    unknown = sorted(c for c in by_name if c not in dim.columns)
    if unknown:
        load.unknown_columns[path] = unknown
    rescued = (
        F.to_json(F.struct(*[F.col(f"`{by_name[c]}`").alias(c) for c in unknown]))
        if unknown and dim.keep_unknown
        else F.lit(None)
    )
    return df.select(
        *[
            (F.col(f"`{by_name[c]}`") if c in by_name else F.lit(None)).cast("string").alias(c)
            for c in dim.columns
        ],
        rescued.cast("string").alias("_rescued_data"),
        F.lit(path).alias("_source_file"),
        F.lit(modified_ms).cast("long").alias("_modified_ms"),
        F.monotonically_increasing_id().alias("_row"),  # increasing in file order
    )


def read_reference(
    spark: SparkSession, folder: str, dim: Dimension, load: DimensionLoad | None = None
) -> DataFrame:
    """Every file under a landing folder, each read by its own header, as typed rows.

    Grain: one row per data row of every file, with `_source_file`, `_modified_ms` (the file's
    modification time) and `_row` (order within the file). Values are trimmed, then typed; a
    value that does not fit its type is NULL.
    """
    load = load if load is not None else DimensionLoad()
    files = list_file_stats(spark, folder)
    if not files:
        raise InputError(
            f"no {dim.name} files under {folder}: deliver the {dim.name} CSV files there "
            "(see docs/source-contract.md)"
        )
    frames = [
        frame
        for path, _size, modified in files
        if (frame := _read_file(spark, path, modified, dim, load)) is not None
    ]
    if not frames:
        raise InputError(f"every {dim.name} file under {folder} is empty")
    rows = functools.reduce(DataFrame.unionByName, frames)
    typed = [
        F.trim(F.col(c)).try_cast(t).alias(c) if t != "string" else _text(F.col(c)).alias(c)
        for c, t in dim.columns.items()
    ]
    return rows.select(*typed, "_rescued_data", "_source_file", "_modified_ms", "_row")


def _text(value: Column) -> Column:
    """Trimmed text; blank is NULL."""
    trimmed = F.trim(value)
    return F.when(trimmed != "", trimmed)


def latest_per_key(rows: DataFrame, key: Sequence[str]) -> DataFrame:
    """One row per key: the row of the most recently modified file (then the later path), and
    in that file the last row. The whole row wins, so a blank field never mixes with another
    row's values. Grain: one row per key (rows with a NULL key part are dropped)."""
    order = Window.partitionBy(*key).orderBy(
        F.col("_modified_ms").desc(), F.col("_source_file").desc(), F.col("_row").desc()
    )
    keyed = rows.where(functools.reduce(lambda a, b: a & b, [F.col(k).isNotNull() for k in key]))
    return keyed.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


def count_duplicates(rows: DataFrame, key: Sequence[str]) -> tuple[int, int]:
    """(rows with a full key, rows beyond the first per key) in one aggregate."""
    keyed = rows.where(functools.reduce(lambda a, b: a & b, [F.col(k).isNotNull() for k in key]))
    counts = (
        keyed.groupBy(*key)
        .count()
        .agg(F.sum("count").alias("rows"), F.count(F.lit(1)).alias("keys"))
        .first()
    )
    total = int(counts["rows"] or 0) if counts else 0
    keys = int(counts["keys"] or 0) if counts else 0
    return total, total - keys


def products_silver(rows: DataFrame) -> DataFrame:
    """Typed products, one row per product_id (`latest_per_key`)."""
    return latest_per_key(rows, PRODUCTS.key).select(*PRODUCT_COLUMNS, "_rescued_data")


def customers_silver(rows: DataFrame, key: str) -> DataFrame:
    """Customers with PII replaced by pseudonyms. Grain: one row per customer_id."""
    pseudonym = pseudonym_udf(key)
    return latest_per_key(rows, CUSTOMERS.key).select(
        "customer_id",
        *[pseudonym(F.col(c)).alias(f"{c}_hash") for c in PII_FIELDS],
        F.col("region"),
        F.to_date("signup_date").alias("signup_date"),
    )


def inventory_silver(rows: DataFrame) -> DataFrame:
    """On-hand snapshots. Grain: one row per (snapshot_date, product_id)."""
    return latest_per_key(rows, INVENTORY.key).select("snapshot_date", "product_id", "on_hand")


def _exists(spark: SparkSession, folder: str) -> bool:
    """True when an optional landing folder exists and holds at least one CSV file."""
    return any(path.endswith(".csv") for path, _, _ in list_file_stats(spark, folder))


# Bump when a dimension transformation changes: every table is then rebuilt once.
DIMS_FORMAT = "dims-v2"  # v2: read by headers, newest row per key, HMAC pseudonyms


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


def _build(
    spark: SparkSession,
    folder: str,
    dim: Dimension,
    to_silver: Callable[[DataFrame], DataFrame],
    load: DimensionLoad,
) -> DataFrame:
    """Reads a dimension's files, counts its rows and duplicate keys into `load`, warns about
    what it found, and returns the silver rows."""
    rows = read_reference(spark, folder, dim, load)
    load.rows, load.duplicates = count_duplicates(rows, dim.key)
    for path, columns in load.unknown_columns.items():
        kept = "kept in _rescued_data" if dim.keep_unknown else "not copied (may be personal data)"
        log.warning("%s: unknown columns %s, %s", path, columns, kept)
    for path in load.empty_files:
        log.warning("%s: empty file (no header), skipped", path)
    if load.duplicates:
        log.warning(
            "%s: %d rows repeat a key (%s); the row of the newest file, then the last row in "
            "it, is kept", dim.name, load.duplicates, ", ".join(dim.key),
        )  # fmt: skip
    return to_silver(rows)


def _refresh_one(
    spark: SparkSession,
    warehouse: Warehouse,
    name: str,
    fingerprint: str,
    build: Callable[[], DataFrame],
    run_id: str,
) -> tuple[int | None, bool]:
    """Rewrites silver/<name> unless its last write came from the same source files."""
    last = ops.read_tag(warehouse.last_user_metadata(spark, "silver", name))
    if last.get("sources") == fingerprint:
        return warehouse.version(spark, "silver", name), False
    tag = ops.commit_tag(run_id, sources=fingerprint)
    return warehouse.overwrite(build(), "silver", name, user_metadata=tag), True


def refresh_dims(
    spark: SparkSession, settings: Settings, warehouse: Warehouse, run_id: str
) -> tuple[dict[str, int | None], dict[str, DimensionLoad]]:
    """Rewrites silver/products, silver/customers (and silver/inventory if landed).

    A table is rewritten only when its landing files changed since its last write (path, size
    or modification time of any file, files added or removed), when the PII key changed (for
    customers), or when its latest commit is not such a write (e.g. after `salesopt maintain`).
    The fingerprint of the source files is stored with the run id in the commit's
    `userMetadata` (`ops.commit_tag`, field `sources`). Returns the
    table versions, and what each rewritten dimension's load found.
    """
    landing = settings.paths.landing.rstrip("/")
    key = pii_key(settings)
    key_id = hashlib.sha256(f"pii-key|{key}".encode()).hexdigest()
    dims: list[tuple[Dimension, str, Callable[[DataFrame], DataFrame]]] = [
        (PRODUCTS, "", products_silver),
        (CUSTOMERS, key_id, lambda rows: customers_silver(rows, key)),
    ]
    if _exists(spark, f"{landing}/inventory"):
        dims.append((INVENTORY, "", inventory_silver))
    versions: dict[str, int | None] = {}
    loads: dict[str, DimensionLoad] = {}
    unchanged = []
    for dim, extra, to_silver in dims:
        folder = f"{landing}/{dim.name}"
        load = DimensionLoad(key=dim.key)
        fingerprint = source_fingerprint(spark, folder, extra)
        versions[f"silver/{dim.name}"], rewritten = _refresh_one(
            spark,
            warehouse,
            dim.name,
            fingerprint,
            functools.partial(_build, spark, folder, dim, to_silver, load),
            run_id,
        )
        if rewritten:
            loads[f"silver/{dim.name}"] = load
        else:
            unchanged.append(dim.name)
    if unchanged:
        log.info(
            "dimension files unchanged since the last load: kept silver/%s", ", ".join(unchanged)
        )
    return versions, loads
