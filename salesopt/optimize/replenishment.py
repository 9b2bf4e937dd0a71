"""Replenishment plan from the forecast: demand over lead time, safety stock, reorder point and an
order-up-to level per product; a suggested order where on-hand stock is known.

Window arithmetic (docs/pricing-and-replenishment.md): the plan covers the days after `as_of`.
A forecast period [ds, ds + len) contributes `f = overlap_days / len` of its mean and `f` of its
variance (days inside a period independent), and periods are independent, so over a window W of days

    D_W = sum(f * yhat)    sigma_W = sqrt(sum(f * sigma^2))    sigma = (upper - lower) / (2 z_lvl)

With lead time L, review period R and z = Phi^-1(service level): reorder point s = D_L + z sigma_L,
order-up-to S = D_{L+R} + z sigma_{L+R}. The policy (`optimize.policy`) decides the order:
`R_S` (periodic review, default) orders up to S at every review and has no reorder point; `s_S`
orders S - on_hand (rounded up) only when on_hand <= s, which assumes an order can go out at
every refresh. No order for a product with no demand: less than half a unit forecast over L + R
and no sales in the recent window.
"""

from __future__ import annotations

from datetime import date, timedelta
from statistics import NormalDist

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from salesopt.config import OptimizeSettings

ON_HAND, NO_INVENTORY = "on_hand", "no_inventory_input"
CONTINUOUS, PERIODIC = "s_S", "R_S"  # optimize.policy
# order_reason values
BELOW_REORDER, ABOVE_REORDER, REVIEW = "at_or_below_reorder_point", "above_reorder_point", "review"
NO_DEMAND, COVERED = "no_demand", "stock_covers_order_up_to"
MIN_DEMAND_UNITS = 0.5  # forecast units over L + R below which (and no recent sale) nothing is due
POLICY_SCHEMA = (
    "category string, lead_time_days int, review_period_days int, service_level double, z double"
)


def z_score(level: float) -> float:
    """Standard normal quantile: z_score(0.95) = 1.6449 (one-sided service level)."""
    return NormalDist().inv_cdf(level)


def interval_z(level: float) -> float:
    """Half-width of a central `level` interval in sigmas: interval_z(0.8) = 1.2816."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def policy_rows(
    settings: OptimizeSettings, categories: list[str]
) -> list[tuple[str, int, int, float, float]]:
    """(category, lead_time_days, review_period_days, service_level, z) for each category:
    the defaults, replaced key by key by `category_overrides` (keys validated by the settings)."""
    rows = []
    for category in sorted(set(categories) | set(settings.category_overrides)):
        over = settings.category_overrides.get(category, {})
        level = float(over.get("service_level", settings.service_level))
        rows.append(
            (
                category,
                int(over.get("lead_time_days", settings.lead_time_days)),
                int(over.get("review_period_days", settings.review_period_days)),
                level,
                z_score(level),
            )
        )
    return rows


def period_days(frequency: str) -> Column:
    """Length in days of the forecast period starting at `ds`."""
    if frequency == "daily":
        return F.lit(1)
    if frequency == "weekly":
        return F.lit(7)
    return F.datediff(F.add_months("ds", 1), F.col("ds"))


def select_level(forecasts: DataFrame, level: float) -> DataFrame:
    """Rows of one interval level: the one closest to `level` when a `level` column exists.

    Adds `interval_level` (the level the bounds belong to; `level` when the table has one level).
    """
    if "level" not in forecasts.columns:
        return forecasts.withColumn("interval_level", F.lit(level))
    gap = F.abs(F.col("level") - F.lit(level))
    closest = F.min(gap).over(Window.partitionBy("product_id"))
    return (
        forecasts.withColumn("_closest", closest)
        .where(gap == F.col("_closest"))
        .withColumn("interval_level", F.col("level").cast("double"))
        .drop("level", "_closest")
    )


def with_sigma(forecasts: DataFrame, z_of_level: dict[float, float]) -> DataFrame:
    """Adds `sigma`, the standard deviation implied by the interval: (upper - lower) / (2 z)."""
    z = F.lit(None).cast("double")
    for level, value in z_of_level.items():
        z = F.when(F.abs(F.col("interval_level") - level) < 1e-9, F.lit(value)).otherwise(z)
    width = F.greatest(F.col("yhat_upper") - F.col("yhat_lower"), F.lit(0.0))
    return forecasts.withColumn("sigma", width / (2 * z))


def _overlap(start: date, days: Column) -> Column:
    """Days of the period [ds, ds + len) inside [start, start + days)."""
    end = F.date_add(F.lit(start), days)
    first = F.greatest(F.col("ds"), F.lit(start))
    last = F.least(F.date_add("ds", F.col("period_len")), end)
    return F.greatest(F.datediff(last, first), F.lit(0)).cast("double")


def window_demand(
    forecasts: DataFrame, policies: DataFrame, as_of: date, frequency: str
) -> DataFrame:
    """Demand mean and variance over L and L+R days after as_of. Grain: one row per product.

    `forecasts` needs product_id, category, ds, yhat, sigma; `policies` the POLICY_SCHEMA columns.
    """
    start = as_of + timedelta(days=1)
    lead = F.col("lead_time_days")
    cover = F.col("lead_time_days") + F.col("review_period_days")
    rows = (
        forecasts.join(F.broadcast(policies), on="category", how="inner")
        .withColumn("period_len", period_days(frequency))
        .withColumn("f_l", _overlap(start, lead) / F.col("period_len"))
        .withColumn("f_lr", _overlap(start, cover) / F.col("period_len"))
        .withColumn("covered", _overlap(start, cover))
    )
    var = F.pow(F.coalesce("sigma", F.lit(0.0)), 2)
    return rows.groupBy(
        "product_id", "category", "lead_time_days", "review_period_days", "service_level", "z"
    ).agg(
        F.sum(F.col("f_l") * F.col("yhat")).alias("demand_lead_time"),
        F.sum(F.col("f_lr") * F.col("yhat")).alias("demand_lead_review"),
        F.sqrt(F.sum(F.col("f_l") * var)).alias("sigma_lead_time"),
        F.sqrt(F.sum(F.col("f_lr") * var)).alias("sigma_lead_review"),
        F.sum("covered").cast("int").alias("covered_days"),
        F.max("interval_level").alias("interval_level"),
        F.first("model", ignorenulls=True).alias("forecast_model"),
    )


def latest_on_hand(inventory: DataFrame, as_of: date) -> DataFrame:
    """Latest snapshot on or before as_of. Grain: one row per product."""
    latest = F.max("snapshot_date").over(Window.partitionBy("product_id"))
    return (
        inventory.where(F.col("snapshot_date") <= F.lit(as_of))
        .withColumn("_latest", latest)
        .where(F.col("snapshot_date") == F.col("_latest"))
        .groupBy("product_id", "snapshot_date")
        .agg(F.sum("on_hand").alias("on_hand"))
        .select("product_id", F.col("snapshot_date").alias("on_hand_date"), "on_hand")
    )


def plan(
    demand: DataFrame,
    on_hand: DataFrame | None,
    policy: str = PERIODIC,
    recent: DataFrame | None = None,
) -> DataFrame:
    """Stock levels and the suggested order under `policy`. Grain: one row per product in
    `demand`. `recent` (product_id, recent_units) is each product's units sold in the recent
    window, a product without a row there sold nothing; without `recent` the no-demand rule
    is not applied."""
    if policy not in (CONTINUOUS, PERIODIC):
        raise ValueError(f"unknown replenishment policy {policy!r}; expected s_S or R_S")
    safety = F.col("z") * F.col("sigma_lead_review")
    with_stock = (
        demand.join(on_hand, on="product_id", how="left")
        if on_hand is not None
        else demand.withColumn("on_hand_date", F.lit(None).cast("date")).withColumn(
            "on_hand", F.lit(None).cast("long")
        )
    )
    if recent is not None:
        with_stock = with_stock.join(recent, on="product_id", how="left")
    else:
        with_stock = with_stock.withColumn("recent_units", F.lit(None).cast("double"))
    reorder = F.col("demand_lead_time") + F.col("z") * F.col("sigma_lead_time")
    no_demand = (
        F.lit(False)
        if recent is None
        else (F.col("demand_lead_review") < MIN_DEMAND_UNITS)
        & (F.coalesce(F.col("recent_units"), F.lit(0.0)) <= 0)
    )
    need = F.ceil(F.col("order_up_to") - F.col("on_hand"))
    if policy == PERIODIC:
        due, not_due_reason, due_reason = F.lit(True), F.lit(None), F.lit(REVIEW)
    else:
        due = F.col("on_hand") <= F.col("reorder_point")
        not_due_reason, due_reason = F.lit(ABOVE_REORDER), F.lit(BELOW_REORDER)
    reason = (
        F.when(F.col("on_hand").isNull(), F.lit(NO_INVENTORY))
        .when(no_demand, F.lit(NO_DEMAND))
        .when(~due, not_due_reason)
        .when(need <= 0, F.lit(COVERED))
        .otherwise(due_reason)
    )
    quantity = (
        F.when(F.col("on_hand").isNull(), F.lit(None))
        .when(F.col("order_reason").isin(BELOW_REORDER, REVIEW), need)
        .otherwise(F.lit(0))
    )
    return (
        with_stock.withColumn("safety_stock", safety)
        .withColumn(
            "reorder_point",
            reorder if policy != PERIODIC else F.lit(None).cast("double"),
        )
        .withColumn("order_up_to", F.col("demand_lead_review") + F.col("safety_stock"))
        .withColumn("policy", F.lit(policy))
        .withColumn("order_reason", reason)
        .withColumn("suggested_order_qty", quantity.cast("long"))
        .withColumn(
            "plan_basis",
            F.when(F.col("on_hand").isNotNull(), F.lit(ON_HAND)).otherwise(F.lit(NO_INVENTORY)),
        )
        .select(
            "product_id", "category", "lead_time_days", "review_period_days", "service_level",
            "demand_lead_time", "demand_lead_review", "sigma_lead_time", "sigma_lead_review",
            "safety_stock", "policy", "reorder_point", "order_up_to", "on_hand", "on_hand_date",
            "recent_units", "suggested_order_qty", "order_reason", "plan_basis", "covered_days",
            "interval_level", "forecast_model",
        )
    )  # fmt: skip


def policies_frame(
    spark: SparkSession, settings: OptimizeSettings, categories: list[str]
) -> DataFrame:
    """POLICY_SCHEMA rows for `categories` (small: one row per category)."""
    return spark.createDataFrame(policy_rows(settings, categories), POLICY_SCHEMA)
