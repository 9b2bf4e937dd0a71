"""The decisions stage: price elasticity, price suggestions and the replenishment plan.

Reads silver/order_lines (the elasticity's location-weeks), gold/sales_daily (current price and
units), silver/products, gold/forecasts (and gold/forecast_status, silver/inventory and
quarantine/orders_rejected when present); writes the as_of slices of gold/price_elasticity,
gold/price_recommendations and gold/replenishment_plan (docs/tables.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import date, timedelta

import pandas as pd
from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from salesopt.context import StageContext, StageResult
from salesopt.errors import InputError
from salesopt.optimize import elasticity as el
from salesopt.optimize import pricing
from salesopt.optimize import replenishment as rp

log = logging.getLogger(__name__)

NO_CATEGORY = "(none)"
SILVER_LINES = ("silver", "order_lines")
QUARANTINE = ("quarantine", "orders_rejected")


def with_run(df: DataFrame, as_of: date, run_id: str) -> DataFrame:
    return df.withColumn("as_of", F.lit(as_of)).withColumn("run_id", F.lit(run_id))


def complete_fits(products: DataFrame, fits: DataFrame) -> DataFrame:
    """Every product gets a fit row: products without a week of sales are `too_few_obs`."""
    counts = ("n_obs", "n_locations", "n_prices")
    return (
        products.select("product_id")
        .join(fits, on="product_id", how="left")
        .select(
            "product_id",
            *[F.coalesce(c, F.lit(0)).cast("long").alias(c) if c in counts else F.col(c)
              for c in el.FIT_SCHEMA.fieldNames() if c not in ("product_id", "status", "message")],
            F.coalesce("status", F.lit("too_few_obs")).alias("status"),
            # only products without a fit row had no week with sales
            F.when(F.col("status").isNull(), F.lit("no weeks with sales in the history"))
            .otherwise(F.col("message"))
            .alias("message"),
        )
    )  # fmt: skip


def elasticities(ctx: StageContext, products: DataFrame) -> DataFrame:
    """gold/price_elasticity rows (without as_of, run_id). Grain: one row per product."""
    spark, wh, s = ctx.spark, ctx.warehouse, ctx.settings.optimize
    lines = wh.read(spark, *SILVER_LINES).where(F.col("order_date") <= F.lit(ctx.as_of))
    partitions = s.partitions or ctx.settings.spark.shuffle_partitions
    obs = el.elasticity_observations(lines, ctx.as_of, s.history_days)
    traffic = el.location_traffic(lines, ctx.as_of, s.history_days)
    params = el.ElasticityParams.from_settings(s)
    fits = el.estimate_elasticities(obs, params, partitions, traffic)
    quarantine = wh.read(spark, *QUARANTINE) if wh.exists(spark, *QUARANTINE) else None
    shares = el.quarantined_shares(quarantine, lines, ctx.as_of, s.history_days)
    checked = el.censor(complete_fits(products, fits), shares, s.max_quarantined_share)
    return el.shrunk(checked, products.select("product_id", "category"), 1 - s.significance)


def current_position(sales_daily: DataFrame, as_of: date, window_days: int) -> DataFrame:
    """Current net price (unit-weighted over sold units), weekly units and net units
    (`recent_units`) over the last `window_days` days. Grain: one row per product with sales
    rows in the window. Pricing and the replenishment plan's no-demand rule both read it."""
    first = as_of - timedelta(days=window_days - 1)
    return (
        sales_daily.where(F.col("date").between(F.lit(first), F.lit(as_of)))
        .groupBy("product_id")
        .agg(
            (
                F.sum(F.col("avg_net_price") * F.col("gross_units"))
                / F.sum(F.when(F.col("avg_net_price").isNotNull(), F.col("gross_units")))
            ).alias("current_price"),
            (F.sum("units") / window_days * 7.0).alias("units_per_week"),
            F.sum("units").cast("double").alias("recent_units"),
        )
    )


def price_inputs(products: DataFrame, position: DataFrame, elasticities: DataFrame) -> DataFrame:
    """PRICE_INPUT_COLUMNS. Grain: one row per product."""
    return (
        products.select("product_id", F.col("unit_cost").cast("double").alias("unit_cost"))
        .join(position, on="product_id", how="left")
        .join(
            elasticities.select("product_id", "elasticity", "ci_low", "ci_high", "status"),
            "product_id",
            "left",
        )
        .select(*pricing.PRICE_INPUT_COLUMNS)
    )


def price_recommendations(inputs: DataFrame, rules: pricing.PriceRules) -> DataFrame:
    """Runs `pricing.recommend_prices` on each batch. Grain: one row per product."""

    def batches(frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            yield pricing.recommend_prices(frame, rules)

    return inputs.mapInPandas(batches, schema=pricing.RECOMMENDATION_SCHEMA)  # type: ignore[arg-type]


def _levels(forecasts: DataFrame) -> dict[float, float]:
    """z half-widths for the interval levels present (a handful of rows)."""
    found = [r[0] for r in forecasts.select("interval_level").distinct().collect()]
    return {float(v): rp.interval_z(v / 100 if v > 1 else v) for v in found if v is not None}


def replenishment_plan(ctx: StageContext, products: DataFrame, position: DataFrame) -> DataFrame:
    """gold/replenishment_plan rows for ctx.as_of. Grain: one row per forecast product."""
    spark, wh, s = ctx.spark, ctx.warehouse, ctx.settings
    if not wh.exists(spark, "gold", "forecasts"):
        raise InputError("gold/forecasts does not exist: run the forecast stage before optimize")
    forecasts = wh.read_as_of(spark, "gold", "forecasts", ctx.as_of)
    if forecasts.isEmpty():
        raise InputError(f"gold/forecasts has no slice for as_of {ctx.as_of}: run forecast first")
    columns = ["product_id", "ds", "yhat", "yhat_lower", "yhat_upper", "model", "level"]
    forecasts = forecasts.select(*[c for c in columns if c in forecasts.columns])
    if "model" not in forecasts.columns:
        forecasts = forecasts.withColumn("model", F.lit(None).cast("string"))
    leveled = rp.select_level(forecasts, max(s.forecast.interval_levels))
    categories = products.select("product_id", "category")
    names = [r[0] for r in categories.select("category").distinct().collect() if r[0] is not None]
    with_category = (
        rp.with_sigma(leveled, _levels(leveled))
        .join(categories, on="product_id", how="left")
        .withColumn("category", F.coalesce("category", F.lit(NO_CATEGORY)))
    )
    demand = rp.window_demand(
        with_category,
        rp.policies_frame(spark, s.optimize, [*names, NO_CATEGORY]),
        ctx.as_of,
        s.forecast.frequency,
    )
    stock = None
    if wh.exists(spark, "silver", "inventory"):
        stock = rp.latest_on_hand(wh.read(spark, "silver", "inventory"), ctx.as_of)
    else:
        log.warning("silver/inventory not found: the plan shows order-up-to levels only")
    recent = position.select("product_id", "recent_units")
    plan = rp.plan(demand, stock, s.optimize.policy, recent)
    if wh.exists(spark, "gold", "forecast_status"):
        status = wh.read_as_of(spark, "gold", "forecast_status", ctx.as_of).select(
            "product_id", F.col("status").alias("forecast_status")
        )
        plan = plan.join(status, on="product_id", how="left")
    else:
        plan = plan.withColumn("forecast_status", F.lit(None).cast("string"))
    return with_run(plan, ctx.as_of, ctx.run_id)


def _totals(df: DataFrame, *aggs: Column) -> Row:
    row = df.groupBy().agg(*aggs).first()
    assert row is not None  # a global aggregate always returns one row
    return row


def _summary(elasticity: DataFrame, prices: DataFrame, plan: DataFrame) -> dict[str, object]:
    is_ok = F.col("status") == "ok"
    e = _totals(
        elasticity,
        F.sum(is_ok.cast("int")).alias("ok"),
        F.median(F.when(is_ok, F.col("elasticity"))).alias("median"),
    )
    by_status = elasticity.groupBy("status").agg(F.count("*").alias("n")).collect()
    p = _totals(prices, F.sum((F.col("reason") == pricing.CHANGED).cast("int")).alias("n"))
    r = _totals(
        plan,
        F.sum("suggested_order_qty").alias("units"),
        F.sum((F.col("plan_basis") == rp.ON_HAND).cast("int")).alias("with_stock"),
    )
    return {
        "products_elasticity_ok": int(e["ok"] or 0),
        "median_elasticity": None if e["median"] is None else round(float(e["median"]), 4),
        "elasticity_status": {row["status"]: int(row["n"]) for row in by_status},
        "price_changes_suggested": int(p["n"] or 0),
        "total_suggested_order_units": int(r["units"] or 0),
        "products_with_on_hand": int(r["with_stock"] or 0),
    }


def run(ctx: StageContext) -> StageResult:
    """Writes gold/price_elasticity, gold/price_recommendations, gold/replenishment_plan."""
    spark, wh, s = ctx.spark, ctx.warehouse, ctx.settings.optimize
    sales = wh.read(spark, "gold", "sales_daily").where(F.col("date") <= F.lit(ctx.as_of))
    products = wh.read(spark, "silver", "products")
    position = current_position(sales, ctx.as_of, s.price_window_days)
    plan = replenishment_plan(ctx, products, position)
    tables: dict[str, int | None] = {}
    tables["gold/price_elasticity"] = wh.write_slice(
        with_run(elasticities(ctx, products), ctx.as_of, ctx.run_id),
        "gold", "price_elasticity", ctx.as_of,
    )  # fmt: skip
    elasticity = wh.read_as_of(spark, "gold", "price_elasticity", ctx.as_of)
    inputs = price_inputs(products, position, elasticity)
    recs = price_recommendations(inputs, pricing.PriceRules.from_settings(s))
    tables["gold/price_recommendations"] = wh.write_slice(
        with_run(recs, ctx.as_of, ctx.run_id), "gold", "price_recommendations", ctx.as_of
    )
    tables["gold/replenishment_plan"] = wh.write_slice(
        plan, "gold", "replenishment_plan", ctx.as_of
    )
    written = {name: wh.read_as_of(spark, "gold", name.split("/")[1], ctx.as_of) for name in tables}
    summary = _summary(*written.values())
    log.info("optimize %s: %s", ctx.as_of, summary)
    return StageResult(
        tables=tables,
        rows_in=sales.count(),
        rows_out={name: df.count() for name, df in written.items()},
        summary=summary,
    )
