"""Gold tables from silver order lines: sales series, customer features, interactions.

Pure `DataFrame -> DataFrame` functions (grains in docs/tables.md); `run` reads silver and writes
gold in one place. Sales series are history tables MERGEd for the dates that changed; customer
features and interactions are `as_of` snapshots that use only lines on or before `as_of`.
"""

from __future__ import annotations

import logging
from datetime import date

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from salesopt.context import StageContext

log = logging.getLogger(__name__)

SALES_MEASURES = (
    "units", "gross_units", "returned_units", "revenue", "avg_net_price", "avg_unit_price",
    "discount_share", "n_orders", "n_customers",
)  # fmt: skip


def _counted() -> Column:
    """Lines that count toward sales: not cancelled."""
    return ~F.col("is_cancelled")


def _sold() -> Column:
    return _counted() & (F.col("quantity") > 0)


def _returned() -> Column:
    return _counted() & (F.col("quantity") < 0)


def _sales_aggregates() -> list[Column]:
    sold_qty = F.when(_sold(), F.col("quantity")).otherwise(0)
    sold_net = F.when(_sold(), F.col("net_amount")).otherwise(0.0)
    sold_gross = F.when(_sold(), F.col("gross_amount")).otherwise(0.0)
    sold_discount = F.when(_sold(), F.col("discount")).otherwise(0.0)
    return [
        F.sum(F.when(_counted(), F.col("quantity")).otherwise(0)).cast("long").alias("units"),
        F.sum(sold_qty).cast("long").alias("gross_units"),
        F.sum(F.when(_returned(), -F.col("quantity")).otherwise(0))
        .cast("long")
        .alias("returned_units"),
        F.round(F.sum(F.when(_counted(), F.col("net_amount")).otherwise(0.0)), 2).alias("revenue"),
        (F.sum(sold_net) / F.nullif(F.sum(sold_qty), F.lit(0))).alias("avg_net_price"),
        (F.sum(sold_gross) / F.nullif(F.sum(sold_qty), F.lit(0))).alias("avg_unit_price"),
        F.coalesce(
            F.sum(sold_discount) / F.nullif(F.sum(sold_gross), F.lit(0.0)), F.lit(0.0)
        ).alias("discount_share"),
        F.count_distinct(F.when(_sold(), F.col("order_id"))).alias("n_orders"),
        F.count_distinct(F.when(_sold(), F.col("customer_id"))).alias("n_customers"),
    ]


def sales_daily(lines: DataFrame) -> DataFrame:
    """Product x day sales. Grain: one row per (product_id, date) with any activity."""
    return (
        lines.groupBy("product_id", F.col("order_date").alias("date"))
        .agg(F.first("category", ignorenulls=True).alias("category"), *_sales_aggregates())
        .select("product_id", "category", "date", *SALES_MEASURES)
    )


def sales_weekly(lines: DataFrame) -> DataFrame:
    """Product x ISO week sales (weeks start on Monday). Grain: (product_id, week_start)."""
    return (
        lines.withColumn("week_start", F.date_trunc("week", F.col("order_date")).cast("date"))
        .groupBy("product_id", "week_start")
        .agg(F.first("category", ignorenulls=True).alias("category"), *_sales_aggregates())
        .select("product_id", "category", "week_start", *SALES_MEASURES)
    )


def lines_up_to(lines: DataFrame, as_of: date) -> DataFrame:
    """Lines that happened on or before `as_of` (no future information in a snapshot)."""
    return lines.where(F.col("order_date") <= F.lit(as_of))


def customer_features(lines: DataFrame, as_of: date) -> DataFrame:
    """RFM, tenure, basket and category mix as of a date. Grain: one row per customer."""
    known = lines_up_to(lines, as_of).where(_counted())
    as_of_col = F.lit(as_of)
    per_customer = known.groupBy("customer_id").agg(
        F.count_distinct(F.when(_sold(), F.col("order_id"))).alias("frequency"),
        F.round(F.sum("net_amount"), 2).alias("monetary"),
        F.min(F.when(_sold(), F.col("order_date"))).alias("first_order_date"),
        F.max(F.when(_sold(), F.col("order_date"))).alias("last_order_date"),
        F.count(F.when(_sold(), True)).alias("sold_lines"),
        F.sum(F.when(_sold(), F.col("quantity")).otherwise(0)).alias("sold_units"),
        F.sum(F.when(_returned(), -F.col("quantity")).otherwise(0)).alias("returned_units"),
    )
    by_category = (
        known.groupBy("customer_id", "category")
        .agg(F.sum("net_amount").alias("cat_revenue"))
        .where(F.col("category").isNotNull())
    )
    mix = by_category.groupBy("customer_id").agg(
        F.map_from_entries(
            F.sort_array(
                F.collect_list(F.struct("category", F.greatest(F.col("cat_revenue"), F.lit(0.0))))
            )
        ).alias("cat_revenue_map"),
        F.max_by("category", "cat_revenue").alias("top_category"),
    )
    total = F.aggregate(F.map_values("cat_revenue_map"), F.lit(0.0), lambda a, x: a + x)
    return (
        per_customer.where(F.col("frequency") > 0)
        .join(mix, on="customer_id", how="left")
        .withColumn("recency_days", F.datediff(as_of_col, F.col("last_order_date")))
        .withColumn("tenure_days", F.datediff(as_of_col, F.col("first_order_date")))
        .withColumn("avg_basket", F.round(F.col("monetary") / F.col("frequency"), 4))
        .withColumn("avg_lines_per_order", F.col("sold_lines") / F.col("frequency"))
        .withColumn(
            "return_rate",
            F.least(F.lit(1.0), F.col("returned_units") / F.nullif(F.col("sold_units"), F.lit(0))),
        )
        .withColumn(
            "orders_per_week",
            F.col("frequency") / F.greatest(F.col("tenure_days"), F.lit(7)) * 7.0,
        )
        .withColumn(
            "category_mix",
            F.transform_values(
                "cat_revenue_map", lambda _k, v: F.when(total > 0, v / total).otherwise(F.lit(0.0))
            ),
        )
        .select(
            "customer_id", "recency_days", "frequency", "monetary", "tenure_days", "avg_basket",
            "avg_lines_per_order", F.coalesce("return_rate", F.lit(0.0)).alias("return_rate"),
            "orders_per_week", "first_order_date", "last_order_date", "top_category",
            "category_mix",
        )
    )  # fmt: skip


def interactions(lines: DataFrame, as_of: date, half_life_days: float) -> DataFrame:
    """Customer x product implicit strength with recency decay. Grain: (customer_id, product_id)."""
    known = lines_up_to(lines, as_of).where(_counted())
    decay = F.pow(F.lit(0.5), F.datediff(F.lit(as_of), F.col("order_date")) / F.lit(half_life_days))
    return (
        known.groupBy("customer_id", "product_id")
        .agg(
            F.first("category", ignorenulls=True).alias("category"),
            F.count_distinct(F.when(_sold(), F.col("order_id"))).alias("n_purchases"),
            F.sum(F.when(_sold(), F.col("quantity")).otherwise(0)).cast("long").alias("quantity"),
            F.sum(F.when(_returned(), -F.col("quantity")).otherwise(0))
            .cast("long")
            .alias("returned_units"),
            F.min(F.when(_sold(), F.col("order_date"))).alias("first_purchase_date"),
            F.max(F.when(_sold(), F.col("order_date"))).alias("last_purchase_date"),
            F.sum(F.col("quantity") * decay).alias("raw_strength"),
        )
        .where(F.col("n_purchases") > 0)
        .withColumn("strength", F.round(F.greatest(F.col("raw_strength"), F.lit(0.0)), 6))
        .select(
            "customer_id", "product_id", "category", "n_purchases", "quantity", "returned_units",
            "first_purchase_date", "last_purchase_date", "strength",
        )
    )  # fmt: skip


def with_run(df: DataFrame, as_of: date, run_id: str) -> DataFrame:
    """Adds the run bookkeeping columns every gold table carries."""
    return df.withColumn("as_of", F.lit(as_of)).withColumn("run_id", F.lit(run_id))


def merge_history(
    ctx: StageContext, df: DataFrame, name: str, period: str, changed_periods: DataFrame | None
) -> int | None:
    """MERGEs a history table on (product_id, period), limited to the periods that changed.

    Rows of a changed period that no longer exist in the source are deleted, so a rerun or a
    late correction leaves the table exactly equal to a rebuild.
    """
    wh = ctx.warehouse
    if not wh.exists(ctx.spark, "gold", name):
        return wh.overwrite(df, "gold", name, partition_by=())
    target = DeltaTable.forPath(ctx.spark, wh.path("gold", name))
    source = df
    condition = f"t.product_id = s.product_id AND t.{period} = s.{period}"
    merge = target.alias("t").merge(source.alias("s"), condition)
    measures = {c: f"s.{c}" for c in (*SALES_MEASURES, "category")}
    changed = F.expr(" OR ".join(f"NOT (t.{c} <=> s.{c})" for c in (*SALES_MEASURES, "category")))
    merge = merge.whenMatchedUpdate(
        condition=changed, set={**measures, "as_of": "s.as_of", "run_id": "s.run_id"}
    ).whenNotMatchedInsertAll()
    if changed_periods is not None:
        periods = [r[0] for r in changed_periods.collect()]
        if periods:
            in_scope = F.col(f"t.{period}").isin(periods)
            merge = merge.whenNotMatchedBySourceDelete(condition=in_scope)
    merge.execute()
    return wh.version(ctx.spark, "gold", name)
