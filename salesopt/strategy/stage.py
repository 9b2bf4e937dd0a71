"""The strategy stage: each segment's response, its playbook, and the KPIs that check it.

Reads silver/order_lines, silver/products, gold/customer_segments and gold/segment_profiles (the
as_of slices) and the latest earlier slice of gold/segment_playbook; writes the as_of slices of
gold/segment_response, gold/segment_playbook and gold/segment_kpis (docs/tables.md).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy import stats

from salesopt.config import Settings
from salesopt.context import StageContext, StageResult
from salesopt.errors import InputError
from salesopt.features import history_weeks, with_run
from salesopt.strategy import playbook as pb
from salesopt.strategy import response as rs

log = logging.getLogger(__name__)

KPI_FIELDS = (
    ("since_as_of", T.DateType(), False),
    ("days", T.IntegerType(), False),
    ("segment_id", T.IntegerType(), False),
    ("segment_label", T.StringType(), True),
    ("kpi", T.StringType(), False),
    ("cohort_customers", T.LongType(), False),
    ("realised", T.DoubleType(), True),
    ("expected_low", T.DoubleType(), True),
    ("expected_high", T.DoubleType(), True),
    ("verdict", T.StringType(), False),
    ("actions", T.StringType(), True),
)
KPI_SCHEMA = T.StructType([T.StructField(n, t, null) for n, t, null in KPI_FIELDS])
PLAYBOOK_SCHEMA = T.StructType(
    [
        T.StructField(name, kind, True)
        for name, kind in zip(
            pb.PLAYBOOK_COLUMNS,
            (T.IntegerType(), T.StringType(), T.LongType(), *[T.StringType()] * 5,
             *[T.DoubleType()] * 5, T.StringType()),
            strict=True,
        )
    ]
)  # fmt: skip


def params(settings: Settings) -> rs.ResponseParams:
    s = settings.strategy
    return rs.ResponseParams(
        s.min_obs, s.min_products, s.min_price_cv, s.min_promo_weeks, 1 - s.significance
    )


def rules(settings: Settings) -> pb.PlaybookRules:
    s = settings.strategy
    return pb.PlaybookRules(
        settings.optimize.min_margin, s.max_promo_depth, s.promo_depth_step, 1 - s.significance,
        s.window_days, s.min_orders,
    )  # fmt: skip


def reactivation_rows(
    spark: SparkSession, profiles: pd.DataFrame, reactivation: pb.Reactivation, min_n: int,
    window_days: int,
) -> DataFrame:  # fmt: skip
    """The base reactivation rate as a RESPONSE row of each at-risk and lapsed segment."""
    rate, low, high, n = reactivation
    status = "ok" if rate is not None and n >= min_n else "too_few_obs"
    message = (
        f"customers with no order in {window_days} days, {window_days} days ago: share who "
        f"ordered since ({n} customers, all segments)"
    )
    rows = [
        (int(sid), rs.REACTIVATION, None, rate, None, low if status == "ok" else None,
         high if status == "ok" else None, int(n), None, status, message)
        for sid, label in zip(profiles["segment_id"], profiles["segment_label"], strict=True)
        if label in pb.CHURN_LABELS
    ]  # fmt: skip
    return spark.createDataFrame(rows, rs.RESPONSE_SCHEMA)


def economics(
    lines: DataFrame, segments: DataFrame, products: DataFrame, as_of: date, history_days: int,
    kpi_weeks: int,
) -> dict[int, pb.Economics]:  # fmt: skip
    """Per segment of `segments`: unit cost over shelf price of its lines in the last
    `history_days` (the response's), and the
    mean and standard deviation of its weekly revenue and orders over the last `kpi_weeks`
    whole weeks (weeks without an order count as 0)."""
    recent_from = as_of - timedelta(days=history_days - 1)
    cost = F.col("quantity") * F.col("unit_cost")
    ratios = (
        rs.segment_lines(lines.where(F.col("order_date").between(recent_from, as_of)), segments)
        .join(products.select("product_id", F.col("unit_cost").cast("double")), "product_id")
        .where(F.col("unit_cost").isNotNull() & (F.col("unit_price") > 0))
        .groupBy("segment_id")
        .agg((F.sum(cost) / F.sum(F.col("quantity") * F.col("unit_price"))).alias("ratio"))
        .collect()
    )
    first, last = history_weeks(as_of, kpi_weeks * 7 + 6)
    weekly = (
        rs.segment_lines(
            lines.where(F.col("order_date").between(first, last + timedelta(days=6))), segments
        )
        .withColumn("week_start", F.date_trunc("week", "order_date").cast("date"))
        .groupBy("segment_id", "week_start")
        .agg(F.sum("net_amount").alias("revenue"), F.count_distinct("order_id").alias("orders"))
        .toPandas()
    )
    weeks = pd.date_range(first, last, freq="7D").date
    out: dict[int, pb.Economics] = {}
    ids = [int(r[0]) for r in segments.select("segment_id").distinct().collect()]
    ratio_by = {int(r["segment_id"]): r["ratio"] for r in ratios}
    for sid in ids:
        own = weekly[weekly["segment_id"] == sid].set_index("week_start").reindex(weeks)
        rev = own["revenue"].fillna(0.0).to_numpy(dtype=float)
        orders = own["orders"].fillna(0.0).to_numpy(dtype=float)
        ratio = ratio_by.get(sid)
        out[sid] = pb.Economics(
            None if ratio is None else float(ratio), _mean_sd(rev), _mean_sd(orders)
        )
    return out


def _mean_sd(values: np.ndarray) -> tuple[float, float, int]:
    n = len(values)
    mean = float(values.mean()) if n else 0.0
    return mean, float(np.std(values, ddof=1)) if n > 1 else 0.0, n


def realised_kpis(
    lines: DataFrame, cohort: DataFrame, previous: DataFrame, since: date, as_of: date,
    window_days: int, level: float,
) -> DataFrame:  # fmt: skip
    """KPI_SCHEMA rows: the cohort (each customer's segment on `since`) over (since, as_of]
    against the `monitor` rows of the playbook of `since` (`previous`), their ranges scaled to
    the days since.

    Revenue and orders per day: the playbook's range is one week's daily rate; over `days` the
    average's range narrows by sqrt(7 / days) around the expectation. Reactivation: of the
    cohort's customers with no order in the `window_days` up to `since`, the share who ordered
    since, against the base rate scaled to the days, 1 - (1 - p)^(days / window_days), widened
    by the cohort's sampling error.
    """
    days = (as_of - since).days
    z = float(stats.norm.ppf(0.5 + level / 2))
    quiet_from = since - timedelta(days=window_days - 1)
    history = lines.where(F.col("order_date") <= F.lit(as_of))
    per_customer = (
        rs.segment_lines(history, cohort)
        .groupBy("segment_id", "customer_id")
        .agg(
            F.sum(F.when(F.col("order_date") > F.lit(since), F.col("net_amount"))).alias("rev"),
            F.count_distinct(F.when(F.col("order_date") > F.lit(since), F.col("order_id"))).alias(
                "ord"
            ),
            F.max(F.when(F.col("order_date") <= F.lit(since), F.col("order_date"))).alias("last"),
        )
    )
    quiet = F.col("last").isNull() | (F.col("last") < F.lit(quiet_from))
    measured = (
        cohort.groupBy("segment_id")
        .agg(F.count("*").alias("cohort_customers"))
        .join(
            per_customer.groupBy("segment_id").agg(
                F.sum("rev").alias("revenue"),
                F.sum("ord").alias("orders"),
                F.sum(quiet.cast("int")).alias("quiet"),
                F.sum((quiet & (F.col("ord") > 0)).cast("int")).alias("back"),
            ),
            "segment_id",
            "left",
        )
        .fillna(0, ["revenue", "orders", "quiet", "back"])
    )
    realised = F.create_map(
        F.lit(pb.REVENUE), F.col("revenue") / days,
        F.lit(pb.ORDERS), F.col("orders") / days,
        F.lit(pb.REACTIVATION), F.col("back") / F.nullif(F.col("quiet"), F.lit(0)),
    )  # fmt: skip
    value = F.element_at(F.col("_realised"), F.col("kpi"))
    narrow = F.lit((7 / days) ** 0.5)
    scaled = {
        end: 1 - F.pow(1 - F.col(f"expected_{end}"), F.lit(days / window_days))
        for end in ("low", "high")
    }
    noise = {  # the cohort's sampling error around each end
        end: F.lit(z) * F.sqrt(scaled[end] * (1 - scaled[end]) / F.col("quiet"))
        for end in ("low", "high")
    }
    is_rate = F.col("kpi") == F.lit(pb.REACTIVATION)
    low = F.when(is_rate, F.greatest(scaled["low"] - noise["low"], F.lit(0.0))).otherwise(
        F.greatest(F.col("expected") - (F.col("expected") - F.col("expected_low")) * narrow,
                   F.lit(0.0))
    )  # fmt: skip
    high = F.when(is_rate, F.least(scaled["high"] + noise["high"], F.lit(1.0))).otherwise(
        F.col("expected") + (F.col("expected_high") - F.col("expected")) * narrow
    )
    verdict = (
        F.when(value.isNull(), F.lit("not_measured"))
        .when(value > F.col("_high"), F.lit("above"))
        .when(value < F.col("_low"), F.lit("below"))
        .otherwise(F.lit("within"))
    )
    expected = previous.where(F.col("action") == "monitor").where(F.col("status") == pb.TRACKED)
    actions = (
        previous.where(F.col("status") == pb.RECOMMENDED)
        .groupBy("segment_id")
        .agg(F.concat_ws("; ", F.sort_array(F.collect_list("detail"))).alias("actions"))
    )
    return (
        expected.select(
            "segment_id", "segment_label", "kpi", "expected", "expected_low", "expected_high"
        )
        .join(measured.withColumn("_realised", realised), "segment_id")
        .join(actions, "segment_id", "left")
        .withColumn("_low", low)
        .withColumn("_high", high)
        .select(
            F.lit(since).alias("since_as_of"),
            F.lit(days).alias("days"),
            F.col("segment_id").cast("int"),
            "segment_label",
            "kpi",
            F.when(is_rate, F.col("quiet")).otherwise(F.col("cohort_customers")).cast("long")
            .alias("cohort_customers"),
            value.cast("double").alias("realised"),
            F.col("_low").cast("double").alias("expected_low"),
            F.col("_high").cast("double").alias("expected_high"),
            verdict.alias("verdict"),
            "actions",
        )
    )  # fmt: skip


def _previous_playbook(ctx: StageContext) -> date | None:
    """The latest playbook at least `strategy.kpi_min_days` old (a daily refresh checks the one
    of a week ago, not yesterday's: one day says little against a weekly rhythm)."""
    wh, spark = ctx.warehouse, ctx.spark
    if not wh.exists(spark, "gold", "segment_playbook"):
        return None
    latest = ctx.as_of - timedelta(days=ctx.settings.strategy.kpi_min_days)
    row = (
        wh.read(spark, "gold", "segment_playbook")
        .where(F.col("as_of") <= F.lit(latest))
        .agg(F.max("as_of").alias("d"))
        .first()
    )
    return None if row is None else row["d"]


def kpis(ctx: StageContext, lines: DataFrame) -> tuple[DataFrame, date | None]:
    """gold/segment_kpis rows (without as_of, run_id) and the playbook date they check."""
    spark, wh = ctx.spark, ctx.warehouse
    since = _previous_playbook(ctx)
    if since is None or not wh.exists(spark, "gold", "customer_segments"):
        return spark.createDataFrame([], KPI_SCHEMA), None
    cohort = wh.read_as_of(spark, "gold", "customer_segments", since)
    previous = wh.read_as_of(spark, "gold", "segment_playbook", since)
    s = ctx.settings.strategy
    table = realised_kpis(
        lines, cohort, previous, since, ctx.as_of, s.window_days, 1 - s.significance
    )
    return table, since


def _inputs(ctx: StageContext) -> tuple[DataFrame, pd.DataFrame]:
    spark, wh = ctx.spark, ctx.warehouse
    for name in ("customer_segments", "segment_profiles"):
        if not wh.exists(spark, "gold", name):
            raise InputError(f"gold/{name} does not exist: run the segment stage before strategy")
    segments = wh.read_as_of(spark, "gold", "customer_segments", ctx.as_of)
    profiles = (
        wh.read_as_of(spark, "gold", "segment_profiles", ctx.as_of)
        .select("segment_id", "segment_label", "customers", "yearly_revenue")
        .toPandas()
    )
    if profiles.empty:
        raise InputError(
            f"gold/segment_profiles has no slice for as_of {ctx.as_of}: run segment for it first"
        )
    return segments, profiles


def _summary(playbook: pd.DataFrame, response: pd.DataFrame, kpi_rows: list) -> dict[str, object]:
    price = response[response["metric"] == rs.PRICE]
    done = playbook[playbook["status"] == pb.RECOMMENDED]
    return {
        "segments": int(playbook["segment_id"].nunique()),
        "segment_elasticity_ok": int((price["status"] == "ok").sum()),
        "actions_recommended": len(done),
        "actions": {a: int(n) for a, n in done["action"].value_counts().sort_index().items()},
        "kpis_checked": len(kpi_rows),
        "kpis_off_expectation": sum(1 for r in kpi_rows if r["verdict"] != "within"),
    }


def run(ctx: StageContext) -> StageResult:
    """Writes gold/segment_response, gold/segment_playbook and gold/segment_kpis."""
    spark, wh, s = ctx.spark, ctx.warehouse, ctx.settings.strategy
    segments, profiles = _inputs(ctx)
    lines = wh.read(spark, "silver", "order_lines").where(F.col("order_date") <= F.lit(ctx.as_of))
    products = wh.read(spark, "silver", "products")
    level = 1 - s.significance
    obs = rs.response_observations(lines, segments, ctx.as_of, s.history_days, s.max_products)
    reactivation = rs.reactivation_rate(lines, ctx.as_of, s.window_days, level)
    labels = spark.createDataFrame(profiles[["segment_id", "segment_label"]]).select(
        F.col("segment_id").cast("int"), "segment_label"
    )
    response = (
        rs.estimate_price_response(obs, params(ctx.settings))
        .unionByName(
            rs.behaviour_rows(lines, segments, ctx.as_of, s.window_days, level, s.min_orders)
        )
        .unionByName(reactivation_rows(spark, profiles, reactivation, s.min_orders, s.window_days))
        .join(labels, "segment_id", "left")
    )
    tables: dict[str, int | None] = {}
    tables["gold/segment_response"] = wh.write_slice(
        with_run(response, ctx.as_of, ctx.run_id), "gold", "segment_response", ctx.as_of
    )
    written = wh.read_as_of(spark, "gold", "segment_response", ctx.as_of).toPandas()
    econ = economics(lines, segments, products, ctx.as_of, s.history_days, s.kpi_weeks)
    book = pb.playbook(written, profiles, econ, reactivation, rules(ctx.settings))
    plain = [tuple(None if pd.isna(v) else v for v in row) for row in book.itertuples(index=False)]
    book_df = spark.createDataFrame(plain, PLAYBOOK_SCHEMA)
    kpi_table, since = kpis(ctx, lines)
    tables["gold/segment_playbook"] = wh.write_slice(
        with_run(book_df, ctx.as_of, ctx.run_id), "gold", "segment_playbook", ctx.as_of
    )
    tables["gold/segment_kpis"] = wh.write_slice(
        with_run(kpi_table, ctx.as_of, ctx.run_id), "gold", "segment_kpis", ctx.as_of
    )
    kpi_rows = wh.read_as_of(spark, "gold", "segment_kpis", ctx.as_of).collect()
    summary = _summary(book, written, kpi_rows)
    if since is not None:
        summary["kpis_since"] = since.isoformat()
    log.info("strategy %s: %s", ctx.as_of, summary)
    return StageResult(
        tables=tables,
        rows_in=len(profiles),
        rows_out={
            "gold/segment_response": len(written),
            "gold/segment_playbook": len(book),
            "gold/segment_kpis": len(kpi_rows),
        },
        summary=summary,
    )
