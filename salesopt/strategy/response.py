"""How each customer segment responds: price, promotion, channel, basket and buying pace.

Price and promotion, per segment, pooled across products (`fit_price_response`):

    E[units[p, w]] = exp(a[p] + e * log(price[p, w]) + b * promo[p, w]
                         + c * log(orders[w]) + month[w])

over the segment's product-weeks, zeros included: `units` are the segment's units of product p
in week w, `price` and `promo` the product's market net price and promotion share that week (all
customers' lines: the price the segment faced whether or not it bought), `orders` the segment's
orders that week (its size and activity), `a[p]` a product fixed effect, so only a product's own
price changes over time identify `e`. Poisson pseudo-maximum likelihood keeps the weeks without
a purchase (a log-log fit drops them, and they fall most often at high prices), on each
product's units over its mean (so every product weighs alike whatever its unit of sale), with
standard errors clustered by product. `promo_lift = exp(b)` is a promotion's units multiplier
beyond its price cut; `promo_uplift = exp(b + e * log(1 - depth)) - 1` the units uplift of a
typical promotion of the segment's products, price cut included. Estimators, statuses and the
figures on real data: docs/segmentation.md ("Strategy by segment").
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import statsmodels.api as sm
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy import stats
from threadpoolctl import threadpool_limits

from salesopt.features import history_weeks, sold_line

OBS_COLUMNS = (
    "segment_id",
    "product_id",
    "week_start",
    "units",
    "price",
    "shelf",
    "promo",
    "orders",
)
RESPONSE_FIELDS = (
    ("segment_id", T.IntegerType(), False),
    ("metric", T.StringType(), False),
    ("channel", T.StringType(), True),
    ("estimate", T.DoubleType(), True),
    ("std_error", T.DoubleType(), True),
    ("ci_low", T.DoubleType(), True),
    ("ci_high", T.DoubleType(), True),
    ("n", T.LongType(), False),
    ("previous_estimate", T.DoubleType(), True),
    ("status", T.StringType(), False),
    ("message", T.StringType(), True),
)
RESPONSE_SCHEMA = T.StructType([T.StructField(n, t, null) for n, t, null in RESPONSE_FIELDS])
PRICE, LIFT, UPLIFT, DEPTH = "price_elasticity", "promo_lift", "promo_uplift", "promo_depth"
BASKET, GAP, REACTIVATION = "basket_size", "days_between_orders", "reactivation_rate"
ORDER_SHARE, REVENUE_SHARE = "channel_order_share", "channel_revenue_share"
MIN_CLUSTERS = 10  # fewer products: heteroskedasticity-robust errors instead of clustered
PROMO_WEEK = 0.5  # a product-week with at least this share of units on promotion is a promo week
NO_CHANNEL = "(none)"


@dataclass(frozen=True)
class ResponseParams:
    min_obs: int  # product-weeks with a purchase
    min_products: int
    min_price_cv: float
    min_promo_weeks: int
    level: float  # confidence level of the intervals


def _row(segment_id: int, metric: str, status: str, n: int, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {name: kw.get(name) for name, _t, _n in RESPONSE_FIELDS}
    row.update(segment_id=int(segment_id), metric=metric, status=status, n=int(n))
    return row


def within_price_cv(obs: pd.DataFrame) -> float:
    """Standard deviation of the log price within product, on weeks without promotion (all weeks
    when fewer than two): about the coefficient of variation of the shelf price over time."""
    regular = obs[obs["promo"] < PROMO_WEEK]
    used = regular if len(regular) >= 2 else obs
    if len(used) < 2:
        return 0.0
    log_price = np.log(used["price"].to_numpy(dtype=float))
    within = log_price - used.assign(_lp=log_price).groupby("product_id")["_lp"].transform("mean")
    return float(np.sqrt((within**2).sum() / max(len(used) - 1, 1)))


def promo_depths(obs: pd.DataFrame) -> tuple[float, float, float] | None:
    """Discount of the promotion weeks (1 - price / shelf), weighted by units over the
    product's mean: mean, 10th and 90th percentile; None without promotion weeks."""
    scale = obs.groupby("product_id")["units"].transform("mean")
    promo = obs[(obs["promo"] >= PROMO_WEEK) & (obs["shelf"] > 0) & (scale > 0)]
    if promo.empty:
        return None
    depth = np.clip(1 - promo["price"].to_numpy(dtype=float) / promo["shelf"].to_numpy(), 0, 0.9)
    # units over the product's mean, as in the fit: a product sold by the gram weighs alike
    weights = (promo["units"] / scale[promo.index]).to_numpy(dtype=float) + 1e-9
    order = np.argsort(depth)
    share = np.cumsum(weights[order]) / weights.sum()
    low, high = (float(depth[order][np.searchsorted(share, q)]) for q in (0.1, 0.9))
    return float(np.average(depth, weights=weights)), low, high


def _design(obs: pd.DataFrame, with_promo: bool) -> pd.DataFrame:
    """Product dummies (the fixed effects), log price, promo, log orders and month dummies."""
    weeks = pd.to_datetime(obs["week_start"])
    months = (weeks + pd.Timedelta(days=3)).dt.month.to_numpy()
    cols: dict[str, np.ndarray] = {
        "log_price": np.log(obs["price"].to_numpy(dtype=float)),
        "log_orders": np.log(obs["orders"].to_numpy(dtype=float)),
    }
    if with_promo:
        cols["promo"] = obs["promo"].to_numpy(dtype=float)
    for m in np.unique(months)[1:]:
        cols[f"month{m}"] = (months == m).astype(float)
    design = pd.DataFrame(cols, index=obs.index)
    design = design.loc[:, [c for c in design.columns if c == "log_price" or np.ptp(design[c]) > 0]]
    dummies = pd.get_dummies(obs["product_id"], prefix="p", dtype=float)
    return pd.concat([design, dummies], axis=1)


def fit_price_response(obs: pd.DataFrame, params: ResponseParams) -> pd.DataFrame:
    """One segment's product-weeks (OBS_COLUMNS) -> rows of RESPONSE_SCHEMA for the price
    elasticity, the promotion lift, the promotion uplift and the promotion depths seen.

    Never raises on data: a segment the data cannot support gets status rows (too_few_obs,
    insufficient_variation, failed, implausible, no_promotions)."""
    segment = int(obs["segment_id"].iloc[0])
    # rows arrive in any order: sorted, the same input gives the same fit to the last bit
    obs = obs.sort_values(["product_id", "week_start"], ignore_index=True)
    obs = obs[(obs["price"] > 0) & (obs["orders"] > 0)]
    bought = obs[obs["units"] > 0].groupby("product_id")["week_start"].nunique()
    obs = obs[obs["product_id"].isin(bought.index[bought >= 2])]  # all-zero products: no info
    n = int((obs["units"] > 0).sum())
    n_products = int(obs["product_id"].nunique())
    promo_weeks = int((obs["promo"] >= PROMO_WEEK).sum())
    with_promo = promo_weeks >= params.min_promo_weeks
    no_promo = f"{promo_weeks} product-weeks on promotion < {params.min_promo_weeks}"

    def refused(status: str, message: str) -> pd.DataFrame:
        rows = [_row(segment, PRICE, status, n, message=message)]
        promo_status = status if with_promo else "no_promotions"
        promo_message = message if with_promo else no_promo
        rows += [_row(segment, m, promo_status, promo_weeks, message=promo_message)
                 for m in (LIFT, UPLIFT, DEPTH)]  # fmt: skip
        return pd.DataFrame(rows, columns=RESPONSE_SCHEMA.fieldNames())

    if n < params.min_obs or n_products < params.min_products:
        return refused(
            "too_few_obs",
            f"{n} product-weeks with a purchase over {n_products} products "
            f"(need {params.min_obs} over {params.min_products})",
        )
    cv = within_price_cv(obs)
    if cv < params.min_price_cv:
        return refused("insufficient_variation", f"shelf price variation {cv:.4f}")
    design = _design(obs, with_promo)
    # each product's units over its mean: a Poisson fit weighs a product by its counts, and a
    # product sold by the gram would otherwise outweigh every product sold by the pack
    y = (obs["units"] / obs.groupby("product_id")["units"].transform("mean")).to_numpy(float)
    codes = pd.factorize(obs["product_id"])[0]
    try:
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = sm.GLM(y, design, family=sm.families.Poisson())
            if n_products >= MIN_CLUSTERS:
                fit = model.fit(cov_type="cluster", cov_kwds={"groups": codes}, maxiter=100)
            else:
                fit = model.fit(cov_type="HC1", maxiter=100)
    except (np.linalg.LinAlgError, ValueError) as exc:
        return refused("failed", str(exc)[:200])
    converged = bool(getattr(fit, "converged", True))
    cov = fit.cov_params()
    e, se_e = float(fit.params["log_price"]), float(np.sqrt(cov.loc["log_price", "log_price"]))
    if not converged or not np.isfinite(se_e) or se_e <= 0:
        return refused("failed", "the Poisson fit did not converge")
    z = float(stats.norm.ppf(0.5 + params.level / 2))
    where = f"{n} product-weeks with a purchase, {n_products} products"
    rows = []
    if e - z * se_e > 0:
        msg = f"positive elasticity {e:.2f} (CI above 0): price is not what moves this demand"
        rows.append(_row(segment, PRICE, "implausible", n, estimate=e, std_error=se_e,
                         ci_low=e - z * se_e, ci_high=e + z * se_e, message=msg))  # fmt: skip
    else:
        rows.append(_row(segment, PRICE, "ok", n, estimate=e, std_error=se_e,
                         ci_low=e - z * se_e, ci_high=e + z * se_e, message=where))  # fmt: skip
    if not with_promo:
        rows += [_row(segment, m, "no_promotions", promo_weeks, message=no_promo)
                 for m in (LIFT, UPLIFT, DEPTH)]  # fmt: skip
        return pd.DataFrame(rows, columns=RESPONSE_SCHEMA.fieldNames())
    b, se_b = float(fit.params["promo"]), float(np.sqrt(cov.loc["promo", "promo"]))
    rows.append(_row(segment, LIFT, "ok", promo_weeks, estimate=np.exp(b), std_error=se_b,
                     ci_low=np.exp(b - z * se_b), ci_high=np.exp(b + z * se_b),
                     message=f"units x lift beyond the price cut; {promo_weeks} promotion "
                             "product-weeks (std_error on the log scale)"))  # fmt: skip
    depth, depth_low, depth_high = promo_depths(obs) or (0.0, 0.0, 0.0)
    rows.append(_row(segment, DEPTH, "ok", promo_weeks, estimate=depth, ci_low=depth_low,
                     ci_high=depth_high,
                     message="discount of the promotion weeks (weighted as in the fit): mean; "
                             "ci_low and ci_high are the 10th and 90th percentile"))  # fmt: skip
    cut = float(np.log(1 - depth))
    log_u = b + e * cut
    var_u = cov.loc["promo", "promo"] + cut**2 * cov.loc["log_price", "log_price"]
    var_u += 2 * cut * cov.loc["promo", "log_price"]
    se_u = float(np.sqrt(max(var_u, 0.0)))
    rows.append(_row(segment, UPLIFT, "ok", promo_weeks, estimate=np.expm1(log_u),
                     std_error=se_u, ci_low=np.expm1(log_u - z * se_u),
                     ci_high=np.expm1(log_u + z * se_u),
                     message=f"units uplift of a promotion at the typical depth {depth:.0%} "
                             "(price cut included)"))  # fmt: skip
    return pd.DataFrame(rows, columns=RESPONSE_SCHEMA.fieldNames())


def estimate_price_response(obs: DataFrame, params: ResponseParams) -> DataFrame:
    """`fit_price_response` per segment. Grain: four rows (metrics) per segment with obs."""

    def per_segment(pdf: pd.DataFrame) -> pd.DataFrame:  # a plain function: no type-hint warning
        return fit_price_response(pdf, params)

    return (
        obs.select(*OBS_COLUMNS)
        .groupBy("segment_id")
        .applyInPandas(per_segment, schema=RESPONSE_SCHEMA)
    )


# ---- Spark inputs -------------------------------------------------------------------------


def segment_lines(lines: DataFrame, segments: DataFrame) -> DataFrame:
    """Sold lines with the customer's segment on as_of (`segments`: customer_id, segment_id);
    lines of customers without a segment are left out."""
    return lines.where(sold_line()).join(
        segments.select("customer_id", "segment_id"), on="customer_id", how="inner"
    )


def top_products(lines: DataFrame, first: date, last: date, n: int) -> DataFrame:
    """The `n` products with the most net revenue between first and last (ties by id): what
    matters to the business, whatever a product's unit (a gallon, a pack, a kilo)."""
    ranked = (
        lines.where(sold_line() & F.col("order_date").between(F.lit(first), F.lit(last)))
        .groupBy("product_id")
        .agg(F.sum("net_amount").alias("_revenue"))
        .withColumn("_rank", F.row_number().over(Window.orderBy(F.desc("_revenue"), "product_id")))
    )
    return ranked.where(F.col("_rank") <= n).select("product_id")


def response_observations(
    lines: DataFrame, segments: DataFrame, as_of: date, history_days: int, max_products: int
) -> DataFrame:
    """Grain: one row per (segment_id, product_id, week_start) for the `max_products` best
    sellers by revenue, every week the product sold to anyone and the segment ordered anything: the
    segment's units there (0 when it bought none), the product's market net price, shelf price
    and promotion share (all customers), and the segment's orders that week."""
    first, last_monday = history_weeks(as_of, history_days)
    last = last_monday + timedelta(days=6)
    window = lines.where(sold_line() & F.col("order_date").between(F.lit(first), F.lit(last)))
    window = window.withColumn("week_start", F.date_trunc("week", "order_date").cast("date"))
    discounted = F.coalesce(F.col("discount"), F.lit(0.0)) > 0
    on_promo = F.coalesce(F.col("promo"), discounted) if "promo" in lines.columns else discounted
    best = top_products(lines, first, last, max_products)
    market = (
        window.join(F.broadcast(best), "product_id")
        .groupBy("product_id", "week_start")
        .agg(
            F.sum("quantity").alias("_units"),
            F.sum("net_amount").alias("_net"),
            F.sum(F.col("unit_price") * F.col("quantity")).alias("_gross"),
            F.sum(F.when(F.coalesce(on_promo, F.lit(False)), F.col("quantity"))).alias("_promo"),
        )
        .select(
            "product_id",
            "week_start",
            (F.col("_net") / F.col("_units")).alias("price"),
            (F.col("_gross") / F.col("_units")).alias("shelf"),
            (F.coalesce(F.col("_promo"), F.lit(0)) / F.col("_units")).alias("promo"),
        )
    )
    in_segment = segment_lines(window, segments)
    orders = in_segment.groupBy("segment_id", "week_start").agg(
        F.count_distinct("order_id").cast("double").alias("orders")
    )
    units = (
        in_segment.join(F.broadcast(best), "product_id")
        .groupBy("segment_id", "product_id", "week_start")
        .agg(F.sum("quantity").cast("double").alias("units"))
    )
    return (
        orders.join(market, "week_start")
        .join(units, ["segment_id", "product_id", "week_start"], "left")
        .select(
            "segment_id",
            "product_id",
            "week_start",
            F.coalesce("units", F.lit(0.0)).alias("units"),
            "price",
            "shelf",
            "promo",
            "orders",
        )
    )


def _interval(mean: F.Column, sd: F.Column, n: F.Column, z: float) -> tuple[F.Column, F.Column]:
    se = sd / F.sqrt(n)
    return mean - F.lit(z) * se, mean + F.lit(z) * se


def _mean_rows(
    values: DataFrame, metric: str, column: str, z: float, min_n: int, unit: str
) -> DataFrame:
    """Mean of `column` per segment (recent and previous window) as RESPONSE rows; `values`
    carries segment_id, `recent` (bool) and the column."""
    stats_ = values.groupBy("segment_id").agg(
        F.avg(F.when(F.col("recent"), F.col(column))).alias("m"),
        F.stddev(F.when(F.col("recent"), F.col(column))).alias("sd"),
        F.count(F.when(F.col("recent"), F.lit(1))).alias("n"),
        F.avg(F.when(~F.col("recent"), F.col(column))).alias("prev"),
    )
    low, high = _interval(F.col("m"), F.col("sd"), F.col("n"), z)
    enough = F.col("n") >= min_n
    return stats_.select(
        F.col("segment_id").cast("int"),
        F.lit(metric).alias("metric"),
        F.lit(None).cast("string").alias("channel"),
        F.col("m").alias("estimate"),
        (F.col("sd") / F.sqrt("n")).alias("std_error"),
        F.when(enough, low).alias("ci_low"),
        F.when(enough, high).alias("ci_high"),
        F.col("n").cast("long"),
        F.col("prev").alias("previous_estimate"),
        F.when(enough, F.lit("ok")).otherwise(F.lit("too_few_obs")).alias("status"),
        F.when(enough, F.format_string(f"%d {unit} in the window", "n"))
        .otherwise(F.format_string(f"%d {unit} in the window < {min_n}", "n"))
        .alias("message"),
    )


def _orders(lines: DataFrame, segments: DataFrame, as_of: date, window_days: int) -> DataFrame:
    """The segment's orders of the three last windows: one row per (segment_id, customer_id,
    order_id) with its day, channel, net revenue, `window_no` (0 the last window, 1 the one
    before, 2 the one before that: only the gaps reach back to it) and `recent`."""
    start = as_of - timedelta(days=3 * window_days - 1)
    channel = (
        F.coalesce(F.col("channel"), F.lit(NO_CHANNEL))
        if "channel" in lines.columns
        else (F.lit(NO_CHANNEL))
    )
    back = F.datediff(F.lit(as_of), F.col("order_date"))
    return (
        segment_lines(
            lines.where(F.col("order_date").between(F.lit(start), F.lit(as_of))), segments
        )
        .groupBy("segment_id", "customer_id", "order_id")
        .agg(
            F.min("order_date").alias("order_date"),
            F.min(channel).alias("channel"),
            F.sum("net_amount").alias("revenue"),
        )
        .withColumn("window_no", F.floor(back / window_days).cast("int"))
        .withColumn("recent", F.col("window_no") == 0)
    )


def behaviour_rows(
    lines: DataFrame, segments: DataFrame, as_of: date, window_days: int, level: float, min_n: int
) -> DataFrame:
    """Basket size, days between orders and channel mix per segment, over the last
    `window_days` (previous_estimate: the window before). RESPONSE rows.

    A gap belongs to the window of its later order and reaches back up to two windows, in the
    last window and the one before alike, so the trend compares like with like."""
    z = float(stats.norm.ppf(0.5 + level / 2))
    orders = _orders(lines, segments, as_of, window_days)
    two = orders.where(F.col("window_no") <= 1)
    basket = _mean_rows(two, BASKET, "revenue", z, min_n, "orders")
    by_customer = Window.partitionBy("customer_id").orderBy("order_date", "order_id")
    gap_days = F.datediff("order_date", F.lag("order_date").over(by_customer))
    gaps = (
        orders.withColumn("gap", gap_days)
        .where(F.col("gap").isNotNull() & (F.col("window_no") <= 1))
        .where(F.col("gap") < 2 * window_days)  # the same reach in both windows
    )
    gap = _mean_rows(gaps, GAP, "gap", z, min_n, "repeat orders")
    return basket.unionByName(gap).unionByName(channel_rows(two, z, min_n))


def channel_rows(orders: DataFrame, z: float, min_n: int) -> DataFrame:
    """Each channel's share of the segment's orders and revenue in the last window, with a
    normal-approximation interval (revenue share: linearised over orders), and the previous
    window's share. RESPONSE rows, one per (segment, channel, metric)."""
    totals = orders.groupBy("segment_id", "recent").agg(
        F.count("*").alias("t_n"),
        F.sum("revenue").alias("t_r"),
        F.sum(F.col("revenue") ** 2).alias("t_r2"),
    )
    per = orders.groupBy("segment_id", "recent", "channel").agg(
        F.count("*").alias("c_n"),
        F.sum("revenue").alias("c_r"),
        F.sum(F.col("revenue") ** 2).alias("c_r2"),
    )
    channels = orders.select("segment_id", "channel").distinct()
    both = (
        channels.crossJoin(orders.select("recent").distinct())
        .join(totals, ["segment_id", "recent"])
        .join(per, ["segment_id", "recent", "channel"], "left")
        .fillna(0, ["c_n", "c_r", "c_r2"])
    )
    s_o = F.col("c_n") / F.col("t_n")
    s_r = F.col("c_r") / F.nullif(F.col("t_r"), F.lit(0.0))
    se_o = F.sqrt(s_o * (1 - s_o) / F.col("t_n"))
    # linearised ratio: sum_i (r_i (1[c_i] - s))^2 / (sum_i r_i)^2
    se_r = F.sqrt(
        (1 - s_r) ** 2 * F.col("c_r2") + s_r**2 * (F.col("t_r2") - F.col("c_r2"))
    ) / F.nullif(F.col("t_r"), F.lit(0.0))
    shares = both.select(
        "segment_id", "channel", "recent", "t_n",
        s_o.alias("order_share"), se_o.alias("order_se"),
        s_r.alias("revenue_share"), se_r.alias("revenue_se"),
    )  # fmt: skip
    recent = shares.where("recent").drop("recent")
    previous = shares.where(~F.col("recent")).select(
        "segment_id", "channel",
        F.col("order_share").alias("prev_order"), F.col("revenue_share").alias("prev_revenue"),
    )  # fmt: skip
    joined = recent.join(previous, ["segment_id", "channel"], "left")
    enough = F.col("t_n") >= min_n

    def rows(metric: str, share: str, se: str, prev: str) -> DataFrame:
        return joined.select(
            F.col("segment_id").cast("int"),
            F.lit(metric).alias("metric"),
            "channel",
            F.col(share).alias("estimate"),
            F.col(se).alias("std_error"),
            F.when(enough, F.greatest(F.col(share) - z * F.col(se), F.lit(0.0))).alias("ci_low"),
            F.when(enough, F.least(F.col(share) + z * F.col(se), F.lit(1.0))).alias("ci_high"),
            F.col("t_n").cast("long").alias("n"),
            F.col(prev).alias("previous_estimate"),
            F.when(enough, F.lit("ok")).otherwise(F.lit("too_few_obs")).alias("status"),
            F.format_string("%d orders in the window", "t_n").alias("message"),
        )

    return rows(ORDER_SHARE, "order_share", "order_se", "prev_order").unionByName(
        rows(REVENUE_SHARE, "revenue_share", "revenue_se", "prev_revenue")
    )


def reactivation_rate(
    lines: DataFrame, as_of: date, window_days: int, level: float
) -> tuple[float | None, float | None, float | None, int]:
    """Base reactivation: of the customers with an order before `as_of - window_days` but none
    in the `window_days` before it, the share who ordered in the last `window_days`.
    Returns (rate, ci_low, ci_high, n) with a Wilson interval; None when n is 0."""
    cut = as_of - timedelta(days=window_days)
    quiet_from = cut - timedelta(days=window_days)
    per_customer = (
        lines.where(sold_line() & (F.col("order_date") <= F.lit(as_of)))
        .groupBy("customer_id")
        .agg(
            F.max(F.when(F.col("order_date") <= F.lit(cut), F.col("order_date"))).alias("before"),
            F.max(F.when(F.col("order_date") > F.lit(cut), F.lit(1)).otherwise(F.lit(0))).alias(
                "back"
            ),
        )
        .where(F.col("before") <= F.lit(quiet_from))
        .agg(F.count("*").alias("n"), F.sum("back").alias("k"))
        .first()
    )
    n = int(per_customer["n"] or 0) if per_customer else 0
    if n == 0:
        return None, None, None, 0
    k = int(per_customer["k"] or 0)  # type: ignore[index]
    low, high = wilson(k, n, level)
    return k / n, low, high, n


def wilson(k: int, n: int, level: float) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n."""
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))
