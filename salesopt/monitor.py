"""Monitoring: sales outside an earlier forecast's intervals, sudden drops to zero, and segment
share shifts. Writes the as_of slice of gold/sales_anomalies (rules:
docs/pricing-and-replenishment.md).
"""

from __future__ import annotations

import calendar
import logging
from datetime import date, timedelta
from statistics import NormalDist

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from salesopt.config import MonitorSettings
from salesopt.context import StageContext, StageResult

log = logging.getLogger(__name__)

OUTSIDE, DROP, SHIFT = "outside_interval", "drop_to_zero", "segment_shift"
ANOMALY_COLUMNS = (
    "as_of", "run_id", "product_id", "segment_label", "kind", "period", "actual", "expected",
    "lower", "upper", "direction", "severity", "z",
)  # fmt: skip


def period_start(day: date, frequency: str) -> date:
    """Start of the period holding `day`: the day, its Monday, or the 1st of its month."""
    if frequency == "daily":
        return day
    if frequency == "weekly":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_period(start: date, frequency: str) -> date:
    if frequency == "daily":
        return start + timedelta(days=1)
    if frequency == "weekly":
        return start + timedelta(days=7)
    return start + timedelta(days=calendar.monthrange(start.year, start.month)[1])


def complete_periods(as_of: date, frequency: str, n: int) -> list[date]:
    """Starts of the last `n` periods that end on or before as_of, oldest first."""
    starts = [period_start(as_of + timedelta(days=1), frequency)]
    for _ in range(n):
        starts.insert(0, period_start(starts[0] - timedelta(days=1), frequency))
    return starts[:-1]


def period_col(frequency: str) -> Column:
    if frequency == "daily":
        return F.col("date")
    unit = "week" if frequency == "weekly" else "month"
    return F.date_trunc(unit, F.col("date")).cast("date")


def actuals_by_period(sales_daily: DataFrame, frequency: str) -> DataFrame:
    """Net units per product and period. Grain: (product_id, period) with any sales row."""
    return sales_daily.groupBy("product_id", period_col(frequency).alias("period")).agg(
        F.sum("units").cast("double").alias("actual")
    )


def _null(name: str, kind: str = "double") -> Column:
    return F.lit(None).cast(kind).alias(name)


def _above(actual: str, bound: str) -> Column:
    return F.when(F.col(actual) > F.col(bound), "above").otherwise("below").alias("direction")


def severity(z: Column, s: MonitorSettings) -> Column:
    return (
        F.when(z.isNull() | (z >= s.high_z), F.lit("high"))
        .when(z >= s.medium_z, F.lit("medium"))
        .otherwise(F.lit("low"))
    )


def _one_level(forecasts: DataFrame, level: float) -> tuple[DataFrame, Column]:
    """Rows of the level closest to `level` and the z half-width of the bounds' level."""
    if "level" not in forecasts.columns:
        return forecasts, F.lit(NormalDist().inv_cdf(0.5 + level / 2))
    gap = F.abs(F.col("level") - level)
    rows = (
        forecasts.withColumn("_closest", F.min(gap).over(Window.partitionBy("product_id")))
        .where(gap == F.col("_closest"))
        .drop("_closest")
    )
    found = sorted({float(r[0]) for r in rows.select("level").distinct().collect()})
    z: Column = F.lit(None).cast("double")
    for v in found:
        half = NormalDist().inv_cdf(0.5 + (v / 100 if v > 1 else v) / 2)
        z = F.when(F.col("level") == v, F.lit(half)).otherwise(z)
    return rows, z


def outside_interval(
    forecasts: DataFrame, actuals: DataFrame, since: date, as_of: date, frequency: str,
    s: MonitorSettings,
) -> DataFrame:  # fmt: skip
    """Periods (since, as_of] of an earlier forecast whose actual lies outside the interval.

    Only periods complete by as_of count; a product without sales in a period has actual 0.
    Grain: one row per flagged (product_id, period).
    """
    rows, z_half = _one_level(forecasts, s.interval_level)
    last_complete = complete_periods(as_of, frequency, 1)[0]
    sigma = (F.col("upper") - F.col("lower")) / (2 * z_half)
    beyond = F.greatest(F.col("actual") - F.col("upper"), F.col("lower") - F.col("actual"))
    z = F.when(F.col("sigma") > 0, beyond / F.col("sigma"))
    return (
        rows.where((F.col("ds") > F.lit(since)) & (F.col("ds") <= F.lit(last_complete)))
        .select(
            "product_id",
            F.col("ds").alias("period"),
            F.col("yhat").alias("expected"),
            F.col("yhat_lower").alias("lower"),
            F.col("yhat_upper").alias("upper"),
            sigma.alias("sigma"),
        )
        .join(actuals, on=["product_id", "period"], how="left")
        .withColumn("actual", F.coalesce("actual", F.lit(0.0)))
        .where((F.col("actual") > F.col("upper")) | (F.col("actual") < F.col("lower")))
        .withColumn("z", z)
        .where(F.col("z").isNull() | (F.col("z") >= s.min_severity_z))
        .withColumn("severity", severity(F.col("z"), s))
        .select(
            "product_id", _null("segment_label", "string"), F.lit(OUTSIDE).alias("kind"), "period",
            "actual", "expected", "lower", "upper", _above("actual", "upper"), "severity", "z",
        )
    )  # fmt: skip


def drop_to_zero(
    actuals: DataFrame, products: DataFrame, as_of: date, frequency: str, s: MonitorSettings
) -> DataFrame:
    """Active products that sold in each of the `zero_lookback_periods` periods before a run of
    `zero_run_periods` complete periods with no net units. Grain: one row per flagged product."""
    periods = complete_periods(as_of, frequency, s.zero_lookback_periods + s.zero_run_periods)
    run_start = periods[s.zero_lookback_periods]
    prior = F.col("period") < F.lit(run_start)
    return (
        actuals.where(F.col("period").between(F.lit(periods[0]), F.lit(periods[-1])))
        .groupBy("product_id")
        .agg(
            F.sum((prior & (F.col("actual") > 0)).cast("int")).alias("selling_periods"),
            F.sum(F.when(prior, F.col("actual"))).alias("prior_units"),
            F.sum(F.when(~prior, F.col("actual"))).alias("run_units"),
        )
        .where(
            (F.col("selling_periods") == s.zero_lookback_periods)
            & (F.coalesce("run_units", F.lit(0.0)) <= 0)
        )
        .join(products.where(F.col("status") != "discontinued"), "product_id", "left_semi")
        .select(
            "product_id", _null("segment_label", "string"), F.lit(DROP).alias("kind"),
            F.lit(run_start).alias("period"), F.coalesce("run_units", F.lit(0.0)).alias("actual"),
            (F.col("prior_units") / s.zero_lookback_periods).alias("expected"),
            _null("lower"), _null("upper"), F.lit("below").alias("direction"),
            F.lit("high").alias("severity"), _null("z"),
        )
    )  # fmt: skip


def segment_shift(now: DataFrame, before: DataFrame, as_of: date, threshold: float) -> DataFrame:
    """Segments whose share moved by more than `threshold` between two profile slices, matched
    by segment id (a refit keeps a segment's id even when its label changes); a segment missing
    on one side has share 0 there. Grain: one row per flagged segment, under its current label
    (its former one when it is gone)."""
    moved = F.abs(F.col("actual") - F.col("expected"))
    ratio = moved / threshold
    level = F.when(ratio >= 3, "high").when(ratio >= 2, "medium").otherwise("low")
    return (
        now.select("segment_id", "segment_label", F.col("share").cast("double").alias("actual"))
        .join(
            before.select(
                "segment_id",
                F.col("segment_label").alias("label_before"),
                F.col("share").cast("double").alias("expected"),
            ),
            on="segment_id",
            how="full",
        )
        .fillna(0.0, subset=["actual", "expected"])
        .where(moved > threshold)
        .select(
            _null("product_id", "string"),
            F.coalesce("segment_label", "label_before").alias("segment_label"),
            F.lit(SHIFT).alias("kind"),
            F.lit(as_of).alias("period"), "actual", "expected", _null("lower"), _null("upper"),
            _above("actual", "expected"),
            level.alias("severity"),
            _null("z"),
        )
    )  # fmt: skip


def _previous_as_of(df: DataFrame, as_of: date) -> date | None:
    row = df.where(F.col("as_of") < F.lit(as_of)).agg(F.max("as_of")).first()
    return row[0] if row else None


def run(ctx: StageContext) -> StageResult:
    """Writes the as_of slice of gold/sales_anomalies."""
    spark, wh, s, as_of = ctx.spark, ctx.warehouse, ctx.settings.monitor, ctx.as_of
    freq = ctx.settings.forecast.frequency
    sales = wh.read(spark, "gold", "sales_daily").where(F.col("date") <= F.lit(as_of))
    actuals = actuals_by_period(sales, freq)
    found = [drop_to_zero(actuals, wh.read(spark, "silver", "products"), as_of, freq, s)]
    evaluated: dict[str, object] = {DROP: True, OUTSIDE: False, SHIFT: False}
    if wh.exists(spark, "gold", "forecasts"):
        forecasts = wh.read(spark, "gold", "forecasts")
        since = _previous_as_of(forecasts, as_of)
        if since is not None:
            earlier = forecasts.where(F.col("as_of") == F.lit(since))
            found.append(outside_interval(earlier, actuals, since, as_of, freq, s))
            evaluated[OUTSIDE] = since.isoformat()
    if wh.exists(spark, "gold", "segment_profiles"):
        profiles = wh.read(spark, "gold", "segment_profiles")
        before = _previous_as_of(profiles, as_of)
        now = profiles.where(F.col("as_of") == F.lit(as_of))
        if before is not None and not now.isEmpty():
            prev = profiles.where(F.col("as_of") == F.lit(before))
            threshold = ctx.settings.segmentation.share_shift_alert
            found.append(segment_shift(now, prev, as_of, threshold))
            evaluated[SHIFT] = before.isoformat()
    anomalies = found[0]
    for more in found[1:]:
        anomalies = anomalies.unionByName(more)
    out = anomalies.withColumn("as_of", F.lit(as_of)).withColumn("run_id", F.lit(ctx.run_id))
    version = wh.write_slice(out.select(*ANOMALY_COLUMNS), "gold", "sales_anomalies", as_of)
    written = wh.read_as_of(spark, "gold", "sales_anomalies", as_of)
    counts = {
        r["kind"]: r["n"] for r in written.groupBy("kind").agg(F.count("*").alias("n")).collect()
    }
    summary = {
        "anomalies": {kind: int(counts.get(kind, 0)) for kind in (OUTSIDE, DROP, SHIFT)},
        "evaluated": {k: (v if v else "not_evaluated") for k, v in evaluated.items()},
    }
    log.info("monitor %s: %s", as_of, summary)
    return StageResult(
        tables={"gold/sales_anomalies": version},
        rows_out={"gold/sales_anomalies": sum(counts.values())},
        summary=summary,
    )
