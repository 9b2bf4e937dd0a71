"""Turns clean order lines into landing JSON lines with business events and planted dirt.

Every dirt kind (see DIRT_KINDS) hits a disjoint, seeded subset of lines at `dirty_rate` in total;
`truth/dirt` lists which line got which kind, so tests can check where each one lands.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from salesopt.datagen.entities import uniform
from salesopt.datagen.orders import DIRT_KINDS

TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ss'Z'"
RETURN_LINE_OFFSET = 500
UNKNOWN_PRODUCT_OFFSET = 900_000
FUTURE_DAYS = 400
DRIFT_SHARE_OF_DAYS = 0.05
LANDING_FIELDS = (
    "order_id", "line_no", "customer_id", "product_id", "quantity", "unit_price", "discount",
    "currency", "order_ts", "updated_at", "status", "channel", "store_id", "promo", "coupon_code",
)  # fmt: skip


def _u(seed: int, salt: int) -> Column:
    return uniform(seed, salt, "order_id", "line_no")


def with_dirt_kind(lines: DataFrame, seed: int, dirty_rate: float) -> DataFrame:
    """Adds `dirt_kind` (null for clean lines) and `is_returned` to clean lines."""
    kind = F.element_at(
        F.array(*map(F.lit, DIRT_KINDS)), (_u(seed, 82) * len(DIRT_KINDS)).cast("int") + 1
    )
    return lines.withColumn(
        "dirt_kind", F.when(_u(seed, 81) < dirty_rate, kind).otherwise(F.lit(None).cast("string"))
    ).withColumn("is_returned", _u(seed, 80) < dirty_rate)


def _base(lines: DataFrame, seed: int, days: int, dirty_rate: float) -> DataFrame:
    drift = (F.col("day") >= int(days * (1 - DRIFT_SHARE_OF_DAYS))) & (_u(seed, 83) < 0.3)
    return (
        lines.withColumn("status", F.lit("completed"))
        .withColumn("currency", F.lit("USD"))
        .withColumn("updated_at", F.col("order_ts"))
        .withColumn(
            "coupon_code",
            F.when(drift & F.lit(dirty_rate > 0), F.lit("SAVE10")).otherwise(
                F.lit(None).cast("string")
            ),
        )
        .withColumn("batch", F.date_format("order_date", "yyyy-MM-dd"))
        .withColumn("copy", F.lit(0))
    )


def _returns(base: DataFrame, seed: int) -> DataFrame:
    """A return is a new line on the same order, negative quantity, dated when it happened."""
    return_ts = F.col("order_ts") + F.make_interval(days=(1 + _u(seed, 84) * 14).cast("int"))
    return (
        base.where(F.col("is_returned") & F.col("dirt_kind").isNull())
        .withColumn("line_no", F.col("line_no") + RETURN_LINE_OFFSET)
        .withColumn("quantity", -F.col("quantity"))
        .withColumn("discount", -F.col("discount"))
        .withColumn("status", F.lit("returned"))
        .withColumn("order_ts", return_ts)
        .withColumn("updated_at", return_ts)
        .withColumn("batch", F.date_format(return_ts, "yyyy-MM-dd"))
        .withColumn("dirt_kind", F.lit("return"))
    )


def _apply(base: DataFrame, seed: int, start: str, days: int) -> DataFrame:
    kind = F.col("dirt_kind")
    null_pick = (_u(seed, 85) * 3).cast("int")
    future_ts = F.date_add(F.lit(start).cast("date"), days + FUTURE_DAYS).cast("timestamp")
    late_date = F.date_add(F.col("order_date"), (3 + _u(seed, 86) * 8).cast("int"))
    return (
        base.withColumn(
            "customer_id",
            F.when((kind == "null_required") & (null_pick == 0), None).otherwise(
                F.col("customer_id")
            ),
        )
        .withColumn(
            "product_id",
            F.when((kind == "null_required") & (null_pick == 1), None)
            .when(
                kind == "unknown_product",
                F.format_string("P%06d", F.col("line_no") + UNKNOWN_PRODUCT_OFFSET),
            )
            .otherwise(F.col("product_id")),
        )
        .withColumn(
            "quantity",
            F.when((kind == "null_required") & (null_pick == 2), None).otherwise(F.col("quantity")),
        )
        .withColumn(
            "unit_price",
            F.when(
                kind == "bad_price", -F.col("unit_price") * (_u(seed, 87) < 0.5).cast("int")
            ).otherwise(F.col("unit_price")),
        )
        .withColumn("order_ts", F.when(kind == "future_ts", future_ts).otherwise(F.col("order_ts")))
        .withColumn(
            "updated_at", F.when(kind == "future_ts", future_ts).otherwise(F.col("updated_at"))
        )
        .withColumn(
            "batch",
            F.when(
                kind == "late", F.concat(F.date_format(late_date, "yyyy-MM-dd"), F.lit("_late"))
            ).otherwise(F.col("batch")),
        )
    )


def _copies(dirty: DataFrame, seed: int) -> DataFrame:
    """Second copies: exact duplicates, and re-sent versions (new quantity or a cancellation)."""
    resend_ts = F.col("order_ts") + F.make_interval(hours=(6 + _u(seed, 88) * 66).cast("int"))
    cancel = _u(seed, 89) < 0.5
    duplicates = dirty.where(F.col("dirt_kind") == "duplicate").withColumn("copy", F.lit(1))
    resends = (
        dirty.where(F.col("dirt_kind") == "resend")
        .withColumn("copy", F.lit(1))
        .withColumn("updated_at", resend_ts)
        .withColumn("status", F.when(cancel, F.lit("cancelled")).otherwise(F.lit("completed")))
        .withColumn("quantity", F.when(cancel, F.col("quantity")).otherwise(F.col("quantity") + 1))
        .withColumn("batch", F.date_format(resend_ts, "yyyy-MM-dd"))
    )
    return duplicates.unionByName(resends)


def _as_text(rows: DataFrame) -> Column:
    payload = F.to_json(
        F.struct(
            *[
                F.date_format(c, TS_FORMAT).alias(c)
                if c in ("order_ts", "updated_at")
                else F.col(c)
                for c in LANDING_FIELDS
            ]
        )
    )
    half = (F.length(payload) / 2).cast("int")
    return F.when(F.col("dirt_kind") == "malformed", F.substring(payload, 1, half)).otherwise(
        payload
    )


def landing_rows(
    lines: DataFrame, seed: int, start: str, days: int, dirty_rate: float
) -> DataFrame:
    """Landing JSON lines with their file batch. Grain: one row per landing line."""
    base = _base(with_dirt_kind(lines, seed, dirty_rate), seed, days, dirty_rate)
    dirty = _apply(base, seed, start, days)
    rows = dirty.unionByName(_copies(dirty, seed)).unionByName(_returns(base, seed))
    return rows.select(
        "batch", "order_id", "line_no", "copy", "dirt_kind", _as_text(rows).alias("value")
    )


def dirt_truth(lines: DataFrame, seed: int, dirty_rate: float) -> DataFrame:
    """Which planted line got which dirt kind (returns included). Grain: (order_id, line_no)."""
    marked = with_dirt_kind(lines, seed, dirty_rate)
    kinds = marked.where(F.col("dirt_kind").isNotNull()).select("order_id", "line_no", "dirt_kind")
    returns = marked.where(F.col("is_returned") & F.col("dirt_kind").isNull()).select(
        "order_id",
        (F.col("line_no") + RETURN_LINE_OFFSET).alias("line_no"),
        F.lit("return").alias("dirt_kind"),
    )
    return kinds.unionByName(returns)
