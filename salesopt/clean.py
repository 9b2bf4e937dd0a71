"""Raw bronze lines -> typed, validated order lines (pure `DataFrame -> DataFrame` functions).

Every raw line ends in exactly one place: accepted into silver, quarantined with a reason code,
or counted as superseded (an exact duplicate, or an older version of a re-sent line). Reason
codes, in the order they are checked (the first that applies wins):

| reason | meaning |
| --- | --- |
| malformed_record | not a JSON object (or not a CSV row with the contract's columns) |
| missing_required | a required field is absent or null |
| wrong_type | a field is present but not of its type (e.g. quantity "two") |
| invalid_price | unit_price <= 0 |
| zero_quantity | quantity = 0 |
| future_timestamp | order_ts after the file's delivery date (or as_of) + clean.max_future_days |
| late_beyond_window | order_date more than clean.late_window_days before the delivery date |
| unknown_product | product_id not in silver/products (with clean.unknown_product=quarantine) |
| rule:<name> | a configured quality expectation with action `quarantine` |
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

# the fixed reason codes, in the order `reason_code` and `with_product_check` check them;
# `rule:<name>` codes come from the quarantine rules configured for silver
REASON_CODES = (
    "malformed_record", "missing_required", "wrong_type", "invalid_price", "zero_quantity",
    "future_timestamp", "late_beyond_window", "unknown_product",
)  # fmt: skip

REQUIRED = (
    "order_id",
    "line_no",
    "customer_id",
    "product_id",
    "quantity",
    "unit_price",
    "order_ts",
)
FIELD_TYPES: dict[str, str] = {
    "order_id": "string",
    "line_no": "int",
    "customer_id": "string",
    "product_id": "string",
    "quantity": "int",
    "unit_price": "double",
    "discount": "double",
    "currency": "string",
    "order_ts": "timestamp",
    "updated_at": "timestamp",
    "status": "string",
    "channel": "string",
    "store_id": "string",
    "promo": "string",
}
STATUSES = ("completed", "returned", "cancelled")
# `promo` is a flag or a promotion id: these texts (any case) mean "not on promotion"; an
# empty field is absent (the discount decides)
NOT_PROMO = ("0", "false", "no", "n", "none")
# the optional fields added last; a CSV file without them (the older layout) is still read
LATER_FIELDS = ("store_id", "promo")
CSV_SCHEMA = ", ".join(f"{name} string" for name in FIELD_TYPES)
_CORRUPT = "__malformed_line"  # not a contract field, so no line sets it
JSON_SCHEMA = f"{CSV_SCHEMA}, {_CORRUPT} string"  # every field as text: typed after trimming
KEY = ("order_id", "line_no")


def parse_records(raw: DataFrame, fmt: str = "json") -> DataFrame:
    """Parses raw lines into string fields plus `_rescued_data` (unknown fields as JSON).

    Grain: one row per raw line (CSV header lines are dropped). `_parsed` is false for a
    malformed line.
    """
    if fmt == "csv":
        header = F.col("value").startswith("order_id,")
        parsed = F.from_csv(F.col("value"), CSV_SCHEMA, {"mode": "PERMISSIVE"})
        fields = F.map_from_arrays(
            F.array(*map(F.lit, FIELD_TYPES)),
            F.array(*[parsed[name] for name in FIELD_TYPES]),
        )
        n_columns = F.size(F.split(F.col("value"), ","))
        columns = n_columns.isin(len(FIELD_TYPES), len(FIELD_TYPES) - len(LATER_FIELDS))
        return (
            raw.where(~header)
            .withColumn("_fields", F.when(columns, fields))
            .withColumn("_parsed", F.col("_fields").isNotNull())
            .withColumn("_rescued_data", F.lit(None).cast("string"))
        )
    # One parse into a struct of the contract's fields as text (a JSON number or object
    # arrives as its JSON text); a line that is not a JSON object lands in `_corrupt`. Unknown
    # keys are found by listing the line's top-level keys, which reads no values, and only the
    # lines that have some are parsed again as a map to keep those fields.
    struct = F.from_json(
        F.col("value"), JSON_SCHEMA, {"columnNameOfCorruptRecord": _CORRUPT, "mode": "PERMISSIVE"}
    )
    known = F.array(*map(F.lit, FIELD_TYPES))
    has_unknown = F.size(F.array_except(F.json_object_keys(F.col("value")), known)) > 0
    unknown = F.map_filter(
        F.from_json(F.col("value"), "map<string,string>"), lambda k, _v: ~k.isin(*FIELD_TYPES)
    )
    return (
        raw.withColumn("_fields", struct)
        .withColumn(
            "_parsed",  # a blank line (tabs) parses to no struct at all
            F.col("_fields").isNotNull() & F.col("_fields").getField(_CORRUPT).isNull(),
        )
        .withColumn("_rescued_data", F.when(F.col("_parsed") & has_unknown, F.to_json(unknown)))
    )


def _raw(name: str) -> Column:
    """The trimmed text of field `name` (null when absent), looked up once per line."""
    return F.col(f"_raw_{name}")


def _typed(name: str) -> Column:
    text = _raw(name)
    kind = FIELD_TYPES[name]
    if kind == "timestamp":
        # the cast reads ISO 8601 with 'T' or a space, fractions and a zone ('Z', +02:00);
        # a text without a zone is in the session time zone (UTC by default)
        return text.try_cast("timestamp")
    if kind == "string":
        return F.when(F.length(text) > 0, text)
    return text.try_cast(kind)


def with_typed_fields(records: DataFrame) -> DataFrame:
    """Adds one typed column per contract field and `_type_error` (a present field that failed).

    Also adds `_raw_<field>` (the trimmed text), so each map lookup happens once per line.
    """
    raw = records.select(
        "*", *[F.trim(F.col("_fields")[name]).alias(f"_raw_{name}") for name in FIELD_TYPES]
    )
    typed = raw.select("*", *[_typed(name).alias(name) for name in FIELD_TYPES])
    any_bad = F.lit(False)
    for name in FIELD_TYPES:
        bad = _raw(name).isNotNull() & F.col(name).isNull() & (_raw(name) != "")
        any_bad = any_bad | F.coalesce(bad, F.lit(False))
    return typed.withColumn("_type_error", any_bad)


RAW_COLUMNS = tuple(f"_raw_{name}" for name in FIELD_TYPES)


def reason_code(as_of: date, max_future_days: int, late_window_days: int) -> Column:
    """The first reason that disqualifies a line (null when the line is valid)."""
    missing = F.lit(False)
    for name in REQUIRED:
        missing = missing | _raw(name).isNull() | (_raw(name) == "")
    reference = F.coalesce(F.col("_delivery_date"), F.lit(as_of))
    future = F.to_date(F.col("order_ts")) > F.date_add(reference, max_future_days)
    too_late = F.col("_delivery_date").isNotNull() & (
        F.to_date(F.col("order_ts")) < F.date_sub(F.col("_delivery_date"), late_window_days)
    )
    return (
        F.when(~F.col("_parsed"), F.lit("malformed_record"))
        .when(missing, F.lit("missing_required"))
        .when(F.col("_type_error"), F.lit("wrong_type"))
        .when(~F.coalesce(F.col("status"), F.lit("completed")).isin(*STATUSES), F.lit("wrong_type"))
        .when(F.col("unit_price") <= 0, F.lit("invalid_price"))
        .when(F.col("quantity") == 0, F.lit("zero_quantity"))
        .when(future, F.lit("future_timestamp"))
        .when(too_late, F.lit("late_beyond_window"))
    )


def with_reason(
    typed: DataFrame, as_of: date, max_future_days: int, late_window_days: int
) -> DataFrame:
    """Adds `_reason` (null = valid so far)."""
    return typed.withColumn("_reason", reason_code(as_of, max_future_days, late_window_days))


def with_product_check(lines: DataFrame, products: DataFrame, unknown_policy: str) -> DataFrame:
    """Joins the product dimension; unknown products are quarantined or flagged by policy."""
    dim = products.select(
        "product_id", F.col("category").alias("_category"), F.lit(True).alias("_known")
    )
    joined = lines.join(F.broadcast(dim), on="product_id", how="left")
    unknown = F.col("_reason").isNull() & F.col("_known").isNull()
    if unknown_policy == "quarantine":
        joined = joined.withColumn(
            "_reason", F.when(unknown, F.lit("unknown_product")).otherwise(F.col("_reason"))
        )
    return joined.withColumn("category", F.coalesce(F.col("_category"), F.lit("unknown"))).drop(
        "_category", "_known"
    )


def promo_flag() -> Column:
    """Whether a line sold on promotion: the `promo` field when given (a flag or a promotion
    id; NOT_PROMO texts mean no), else whether the line carries a discount."""
    text = F.lower(F.col("promo"))
    return F.when(F.col("promo").isNotNull(), ~text.isin(*NOT_PROMO)).otherwise(
        F.coalesce(F.col("discount"), F.lit(0.0)) > 0
    )


def normalised(valid: DataFrame) -> DataFrame:
    """Net amounts and flags in the silver contract. Grain: one row per valid raw line."""
    status = F.coalesce(F.col("status"), F.lit("completed"))
    discount = F.coalesce(F.col("discount"), F.lit(0.0))
    gross = F.round(F.col("quantity") * F.col("unit_price"), 2)
    cancelled = status == "cancelled"
    return valid.select(
        "order_id",
        "line_no",
        "customer_id",
        "product_id",
        "category",
        "quantity",
        "unit_price",
        F.round(discount, 2).alias("discount"),
        gross.alias("gross_amount"),
        F.when(cancelled, F.lit(0.0)).otherwise(F.round(gross - discount, 2)).alias("net_amount"),
        "order_ts",
        F.to_date("order_ts").alias("order_date"),
        F.coalesce(F.col("updated_at"), F.col("order_ts")).alias("updated_at"),
        F.when(F.col("quantity") < 0, F.lit("returned")).otherwise(status).alias("status"),
        (F.col("quantity") < 0).alias("is_return"),
        cancelled.alias("is_cancelled"),
        "channel",
        F.col("store_id"),
        promo_flag().alias("promo"),
        F.upper(F.col("currency")).alias("currency"),
        "_rescued_data",
        "_source_file",
        "_ingested_at",
        "_batch_id",
    )


def rank_versions(lines: DataFrame) -> DataFrame:
    """Orders versions of each (order_id, line_no): latest `updated_at`, then latest ingest.

    Adds `_version_rank` (1 = winner). Exact duplicates tie on every ordering column; one of
    them wins and the others are superseded.
    """
    order = Window.partitionBy(*KEY).orderBy(
        F.col("updated_at").desc(),
        F.col("_ingested_at").desc(),
        F.col("_source_file").desc(),
        F.xxhash64(*[F.col(c) for c in ("quantity", "unit_price", "status", "discount")]).desc(),
    )
    return lines.withColumn("_version_rank", F.row_number().over(order))


def quarantine_rows(rejected: DataFrame, as_of: date, run_id: str) -> DataFrame:
    """Quarantined lines in the `quarantine/orders_rejected` contract, with a stable key."""
    same = Window.partitionBy("_source_file", "value").orderBy(F.col("_ingested_at"))
    return (
        rejected.withColumn("_dup_index", F.row_number().over(same))
        .select(
            F.col("value").alias("raw"),
            F.col("_reason").alias("reason"),
            # as parsed (null when unreadable): the elasticity stage counts each product's
            # quarantined lines (docs/pricing-and-replenishment.md, censoring)
            F.col("product_id"),
            F.to_date("order_ts").alias("order_date"),
            F.col("quantity"),
            "_source_file",
            "_batch_id",
            "_ingested_at",
            F.sha2(F.col("value"), 256).alias("_record_hash"),
            "_dup_index",
            F.lit(as_of).alias("as_of"),
            F.lit(run_id).alias("run_id"),
        )
        .withColumn("_dup_index", F.col("_dup_index").cast(T.IntegerType()))
    )
