"""Own-price elasticity per product: a within-location log-log regression, then shrinkage.

Per product, on location-weeks with positive units (`location` is the line's `store_id`):

    log(units[s, w]) = a[s] + e * log(net_price[s, w]) + b * promo[s, w]
                       + c * log(traffic[s, w]) + d * t[w] + month[w] + error

`a[s]` is a location fixed effect (the regression runs on values demeaned within location), so
only a location's own price changes over time identify `e`; `promo` is the share of the week's
units sold on promotion, so a promotion's display and advertising lift is not read as a price
response; `traffic` is the location's orders that week (all products: customer base, holidays),
`t` a linear trend (the product's growth or decline; `optimize.elasticity_trend`), `month`
calendar dummies. No regressor responds to the product's own price the way other products'
units do. Standard errors are clustered by location (one location: Newey-West with 4 weeks of
lags). Lines without `store_id` form one location: the pooled form, `specification = pooled`.

Each product's estimate is then shrunk toward its category's (empirical Bayes, `shrink`), and a
product whose lines were quarantined beyond `optimize.max_quarantined_share` is refused
(`censored`): quarantine rules that drop the biggest weeks select on the outcome and flip signs.
Formulas, status rules and the figures on real data: docs/pricing-and-replenishment.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import statsmodels.api as sm
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy import stats
from threadpoolctl import threadpool_limits

from salesopt.config import OptimizeSettings
from salesopt.features import history_weeks, sold_line

log = logging.getLogger(__name__)

FIT_FIELDS = (
    ("product_id", T.StringType(), False),
    ("elasticity_raw", T.DoubleType(), True),
    ("std_error_raw", T.DoubleType(), True),
    ("n_obs", T.LongType(), False),
    ("n_locations", T.LongType(), False),
    ("n_prices", T.LongType(), False),
    ("price_cv", T.DoubleType(), True),
    ("r2", T.DoubleType(), True),
    ("specification", T.StringType(), True),
    ("status", T.StringType(), False),
    ("message", T.StringType(), True),
)
FIT_SCHEMA = T.StructType([T.StructField(n, t, null) for n, t, null in FIT_FIELDS])
# after shrinkage: the published row (gold/price_elasticity without as_of and run_id)
ELASTICITY_FIELDS = (
    ("product_id", T.StringType(), False),
    ("category", T.StringType(), True),
    ("elasticity", T.DoubleType(), True),
    ("std_error", T.DoubleType(), True),
    ("ci_low", T.DoubleType(), True),
    ("ci_high", T.DoubleType(), True),
    ("p_value", T.DoubleType(), True),
    ("elasticity_raw", T.DoubleType(), True),
    ("std_error_raw", T.DoubleType(), True),
    ("category_elasticity", T.DoubleType(), True),
    ("shrinkage_weight", T.DoubleType(), True),
    ("n_obs", T.LongType(), False),
    ("n_locations", T.LongType(), False),
    ("n_prices", T.LongType(), False),
    ("price_cv", T.DoubleType(), True),
    ("quarantined_share", T.DoubleType(), True),
    ("r2", T.DoubleType(), True),
    ("specification", T.StringType(), True),
    ("status", T.StringType(), False),
    ("message", T.StringType(), True),
)
ELASTICITY_SCHEMA = T.StructType([T.StructField(n, t, null) for n, t, null in ELASTICITY_FIELDS])
OBS_COLUMNS = ("product_id", "location", "week_start", "units", "price", "promo")
TRAFFIC_COLUMNS = ("location", "week_start", "traffic")
STATUSES = ("ok", "insufficient_variation", "too_few_obs", "censored", "implausible", "failed")
FIXED_EFFECTS, POOLED, SUMMED = "location_fixed_effects", "pooled", "summed_locations"
ALL_LOCATIONS = "(all)"  # the one location of lines without store_id
HAC_LAGS = 4  # weeks of autocorrelation the pooled form's standard error allows for
MIN_CATEGORY_PRODUCTS = 5  # fewer ok products in a category: no shrinkage (weight 1)
# products differ: the between-product spread is taken as at least this much (sd), so a
# precise estimate keeps most of its own value even when a few estimates happen to agree
MIN_BETWEEN_SD = 0.25
NO_CATEGORY = "(none)"  # products without a category: not a group to shrink toward
# a location selling the product in fewer of its weeks joins OTHER_LOCATIONS (see merge_sparse)
MIN_WEEK_SHARE = 0.8
OTHER_LOCATIONS = "(other)"
SUMMED_LOCATIONS = "(summed)"  # every location, when prices are chain-wide
PRICE_RESOLUTION = 0.005  # prices within 0.5 % of each other count as one price point
# below this mean spread of log prices across locations in a week, prices are chain-wide
MAX_CHAIN_PRICE_SPREAD = 0.01


@dataclass(frozen=True)
class ElasticityParams:
    min_obs: int
    min_price_cv: float
    min_distinct_prices: int
    trend: bool = True  # a linear trend term (a product's growth or decline)

    @classmethod
    def from_settings(cls, settings: OptimizeSettings) -> ElasticityParams:
        return cls(
            settings.min_obs,
            settings.min_price_cv,
            settings.min_distinct_prices,
            settings.elasticity_trend,
        )


def _history_lines(lines: DataFrame, as_of: date, history_days: int) -> DataFrame:
    """Sold lines in the whole weeks of the history, with `location` and `week_start`."""
    first, last = history_weeks(as_of, history_days)
    store = F.col("store_id") if "store_id" in lines.columns else F.lit(None).cast("string")
    return (
        lines.where(F.col("order_date").between(F.lit(first), F.lit(last + timedelta(days=6))))
        .where(sold_line())
        .withColumn("location", F.coalesce(store, F.lit(ALL_LOCATIONS)))
        .withColumn("week_start", F.date_trunc("week", F.col("order_date")).cast("date"))
    )


def elasticity_observations(lines: DataFrame, as_of: date, history_days: int) -> DataFrame:
    """Regression input from order lines (silver/order_lines columns). Grain: one row per
    (product_id, location, week_start) with sold units, over whole weeks of the history.

    `price` is the net price per unit sold, `promo` the share of the units sold on promotion.
    Returns and cancellations are not sales at a price and are left out.
    """
    # rows written before silver had `promo` carry null there: their discount says
    discounted = F.coalesce(F.col("discount"), F.lit(0.0)) > 0
    on_promo = F.coalesce(F.col("promo"), discounted) if "promo" in lines.columns else discounted
    return (
        _history_lines(lines, as_of, history_days)
        .groupBy("product_id", "location", "week_start")
        .agg(
            F.sum("quantity").cast("double").alias("units"),
            F.sum("net_amount").alias("_net"),
            F.sum(F.when(F.coalesce(on_promo, F.lit(False)), F.col("quantity"))).alias("_promo"),
        )
        .select(
            "product_id",
            "location",
            "week_start",
            "units",
            (F.col("_net") / F.col("units")).alias("price"),
            (F.coalesce(F.col("_promo"), F.lit(0)) / F.col("units")).alias("promo"),
        )
    )


def location_traffic(lines: DataFrame, as_of: date, history_days: int) -> DataFrame:
    """Store traffic: orders with a sold line (any product) per location and week.

    Grain: one row per (location, week_start). A demand shifter every product of the location
    shares (customer base, holidays, a store opening) that one product's price barely moves,
    unlike other products' units, which substitutes move.
    """
    return (
        _history_lines(lines, as_of, history_days)
        .groupBy("location", "week_start")
        .agg(F.count_distinct("order_id").cast("double").alias("traffic"))
    )


def sparse_locations(obs: pd.DataFrame) -> list[str]:
    """Locations that sold the product in fewer than MIN_WEEK_SHARE of its weeks (none when
    only one would be: summing one location changes nothing)."""
    weeks = obs["week_start"].nunique()
    per_location = obs.groupby("location")["week_start"].nunique()
    sparse = [str(v) for v in per_location.index[per_location.to_numpy() < MIN_WEEK_SHARE * weeks]]
    return sparse if len(sparse) > 1 else []


def price_spread(obs: pd.DataFrame) -> float:
    """Mean over weeks of the standard deviation of the log price across locations (weeks sold
    in two or more locations); NaN when there are none (no evidence of one price)."""
    spread = obs.assign(_lp=np.log(obs["price"])).groupby("week_start")["_lp"].std().dropna()
    return float(spread.mean()) if len(spread) else float("nan")


def merge_sparse(
    obs: pd.DataFrame, sparse: list[str], label: str = OTHER_LOCATIONS
) -> pd.DataFrame:
    """The `sparse` locations summed into one location, `label` (units added, price and promo
    unit-weighted).

    Weeks without a sale drop out of a log-log regression, and at a small store they drop out
    most often when the price is high, which would bias the estimate toward zero; summed, the
    small stores form a series with few empty weeks. Their mix changes little week to week, so
    its own fixed effect absorbs it.
    """
    if not sparse:
        return obs
    small = obs[obs["location"].isin(sparse)]
    summed = (
        small.assign(
            _revenue=small["price"] * small["units"], _promo=small["promo"] * small["units"]
        )
        .groupby("week_start", as_index=False)[["units", "_revenue", "_promo"]]
        .sum()
    )
    merged = pd.DataFrame(
        {
            "product_id": obs["product_id"].iloc[0],
            "location": label,
            "week_start": summed["week_start"],
            "units": summed["units"],
            "price": summed["_revenue"] / summed["units"],
            "promo": summed["_promo"] / summed["units"],
        }
    )
    return pd.concat([obs[~obs["location"].isin(sparse)], merged], ignore_index=True)


def with_traffic(
    obs: pd.DataFrame, traffic: pd.DataFrame, merged: list[str], label: str = OTHER_LOCATIONS
) -> pd.DataFrame:
    """Adds `traffic` to (merged) observations: the merged location's is the sum over the
    `merged` locations, whether or not they sold the product that week."""
    table = traffic[list(TRAFFIC_COLUMNS)]
    other = table[table["location"].isin(merged)]
    if len(other):
        summed = other.groupby("week_start", as_index=False)["traffic"].sum()
        table = pd.concat([table, summed.assign(location=label)], ignore_index=True)
    return obs.merge(table, on=["location", "week_start"], how="left")


def _within(frame: pd.DataFrame, groups: np.ndarray) -> pd.DataFrame:
    """Each column demeaned within its location (the fixed-effects transformation)."""
    return frame - frame.groupby(groups).transform("mean")


def _design(obs: pd.DataFrame, trend: bool) -> pd.DataFrame:
    """log_price, promo, log_traffic (when given), a linear trend (when `trend`) and month
    dummies, demeaned within location; constant columns dropped (a column demeaned to zero
    carries no within-location variation)."""
    weeks = pd.to_datetime(obs["week_start"])
    months = (weeks + pd.Timedelta(days=3)).dt.month.to_numpy()
    cols: dict[str, np.ndarray] = {
        "log_price": np.log(obs["price"].to_numpy(dtype=float)),
        "promo": obs["promo"].to_numpy(dtype=float),
    }
    if "traffic" in obs.columns:
        cols["log_traffic"] = np.log(obs["traffic"].to_numpy(dtype=float))
    if trend:
        cols["trend"] = ((weeks - weeks.min()).dt.days / 365.25).to_numpy()
    for m in np.unique(months)[1:]:
        cols[f"month{m}"] = (months == m).astype(float)
    design = _within(pd.DataFrame(cols, index=obs.index), obs["location"].to_numpy())
    keep = [c for c in design.columns if c == "log_price" or np.ptp(design[c].to_numpy()) > 1e-12]
    return design[keep]


def distinct_prices(prices: np.ndarray) -> int:
    """Prices that differ by more than PRICE_RESOLUTION (relative), whatever the unit: a price
    per ounce has few distinct cents but as many price points as the price per pack."""
    return int(np.unique(np.round(np.log(prices) / PRICE_RESOLUTION)).size)


def shelf_price_cv(obs: pd.DataFrame) -> float | None:
    """Standard deviation of the log net price within location, on weeks without promotion.

    About the coefficient of variation of the regular (shelf) price over time, the variation
    that identifies the elasticity once promotion and location have their own terms. Falls back
    to all weeks when fewer than two regular weeks exist.
    """
    regular = obs[obs["promo"] <= 0]
    used = regular if len(regular) >= 2 else obs
    if len(used) < 2:
        return None
    log_price = pd.Series(np.log(used["price"].to_numpy(dtype=float)), index=used.index)
    within = _within(log_price.to_frame(), used["location"].to_numpy()).iloc[:, 0]
    return float(np.sqrt((within**2).sum() / max(len(used) - 1, 1)))


def _fit_row(product_id: str, status: str, **kw: object) -> pd.DataFrame:
    row = {name: kw.get(name) for name, _t, _n in FIT_FIELDS}
    row.update(product_id=product_id, status=status)
    for name in ("n_obs", "n_locations", "n_prices"):
        row[name] = int(kw.get(name) or 0)  # type: ignore[call-overload]
    return pd.DataFrame([row], columns=FIT_SCHEMA.fieldNames())


def fit_elasticity(
    obs: pd.DataFrame, params: ElasticityParams, traffic: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One product's observations (OBS_COLUMNS) -> one row of FIT_SCHEMA.

    `traffic` (TRAFFIC_COLUMNS, every location and week) adds the log store-traffic control;
    without it (a source without order ids) the regression has none. A product whose data
    cannot support the fit gets a status row, never an exception.
    """
    product_id = str(obs["product_id"].iloc[0])
    obs = obs.loc[(obs["units"] > 0) & (obs["price"] > 0), list(OBS_COLUMNS)]
    all_locations = [str(v) for v in pd.unique(obs["location"])]
    # One price in every location (chain-wide pricing): locations add no price variation, only
    # empty and small weeks; their sum is the better series.
    chain_wide = len(all_locations) > 1 and price_spread(obs) < MAX_CHAIN_PRICE_SPREAD
    sparse = sparse_locations(obs)
    all_sparse = len(all_locations) > 1 and len(sparse) == len(all_locations)
    if chain_wide or all_sparse:
        merged, label = all_locations, SUMMED_LOCATIONS
    else:
        merged, label = sparse, OTHER_LOCATIONS
    obs = merge_sparse(obs, merged, label)
    if traffic is not None:
        obs = with_traffic(obs, traffic, merged, label)
        obs = obs[obs["traffic"] > 0]  # a week without orders cannot have sold the product
    obs = obs.sort_values(["location", "week_start"])
    locations = obs["location"].to_numpy()
    n_locations = int(pd.unique(locations).size)
    spec = SUMMED if chain_wide or all_sparse else POOLED if n_locations <= 1 else FIXED_EFFECTS
    n = len(obs)
    n_prices = distinct_prices(obs["price"].to_numpy(dtype=float))
    cv = shelf_price_cv(obs)
    common: dict[str, object] = dict(
        n_obs=n, n_locations=n_locations, n_prices=n_prices, price_cv=cv, specification=spec
    )
    if n < params.min_obs:
        msg = f"{n} location-weeks with sales < min_obs {params.min_obs}"
        return _fit_row(product_id, "too_few_obs", message=msg, **common)
    if cv is None or cv < params.min_price_cv or n_prices < params.min_distinct_prices:
        msg = f"shelf price variation {cv or 0:.4f}, {n_prices} distinct prices"
        return _fit_row(product_id, "insufficient_variation", message=msg, **common)
    try:
        with threadpool_limits(limits=1):
            design = _design(obs, params.trend)
            y = _within(pd.DataFrame({"y": np.log(obs["units"].to_numpy(dtype=float))},
                                     index=obs.index), locations)["y"]  # fmt: skip
            model = sm.OLS(y.to_numpy(), design)
            if n_locations >= 2:
                codes = pd.factorize(locations)[0]
                fit = model.fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)
            else:
                fit = model.fit(cov_type="HAC", cov_kwds={"maxlags": HAC_LAGS}, use_t=True)
    except (np.linalg.LinAlgError, ValueError) as exc:
        return _fit_row(product_id, "failed", message=str(exc)[:200], **common)
    se = float(fit.bse["log_price"])
    if n_locations >= 2:  # few clusters: widen to the t interval with G - 1 degrees of freedom
        se *= float(stats.t.ppf(0.975, n_locations - 1) / stats.norm.ppf(0.975))
    if fit.df_resid < 1 or not np.isfinite(se) or se <= 0:
        msg = f"no residual degrees of freedom ({fit.df_resid:.0f})"
        return _fit_row(product_id, "failed", message=msg, **common)
    estimate = float(fit.params["log_price"])
    ss_total = float((y**2).sum())
    r2 = 1 - float(fit.ssr) / ss_total if ss_total > 0 else None  # within R^2
    why_summed = "one price" if chain_wide else "few weeks with sales"
    where = {
        FIXED_EFFECTS: f"{n_locations} locations, within locations",
        POOLED: "one location (no store_id, or one store)",
        SUMMED: f"{why_summed} in all {len(all_locations)} locations: summed into one series",
    }[spec]
    message = f"{n} location-weeks, {where}"
    if (estimate - stats.norm.ppf(0.975) * se) > 0:
        msg = f"positive elasticity {estimate:.2f} (CI above 0): price is not what moves demand"
        return _fit_row(
            product_id, "implausible", elasticity_raw=estimate, std_error_raw=se, r2=r2,
            message=msg, **common,
        )  # fmt: skip
    return _fit_row(
        product_id, "ok", elasticity_raw=estimate, std_error_raw=se, r2=r2, message=message,
        **common,
    )  # fmt: skip


def estimate_elasticities(
    obs: DataFrame, params: ElasticityParams, partitions: int, traffic: DataFrame | None = None
) -> DataFrame:
    """Fans `fit_elasticity` out over products. Grain: one row per product with observations.

    `traffic` (location_traffic: locations x weeks, a small table) is collected once and sent
    to every task with the function.
    """
    table = None if traffic is None else traffic.select(*TRAFFIC_COLUMNS).toPandas()

    def per_product(pdf: pd.DataFrame) -> pd.DataFrame:  # a plain function: no type-hint warning
        return fit_elasticity(pdf, params=params, traffic=table)

    return (
        obs.select(*OBS_COLUMNS)
        .repartition(partitions, "product_id")
        .groupBy("product_id")
        .applyInPandas(per_product, schema=FIT_SCHEMA)
    )


def quarantined_shares(
    quarantine: DataFrame | None, accepted: DataFrame, as_of: date, history_days: int
) -> DataFrame:
    """Share of each product's lines in the history that were quarantined (any reason): the
    larger of its share of lines and its share of units (absolute quantities).

    Units matter: a quantity cap drops few lines but the biggest ones, the deepest price cuts.
    Grain: one row per product with accepted or quarantined lines in the window. Quarantined
    lines without a readable product_id or date cannot be attributed and are not counted; one
    without a readable quantity counts as a line only.
    """
    first, last = history_weeks(as_of, history_days)
    window = F.col("order_date").between(F.lit(first), F.lit(last + timedelta(days=6)))
    kept = (
        accepted.where(window)
        .groupBy("product_id")
        .agg(F.count("*").alias("_kept"), F.sum(F.abs("quantity")).alias("_kept_units"))
    )
    if quarantine is not None and "product_id" not in quarantine.columns:
        log.warning(
            "quarantine/orders_rejected has no product_id column (written before it was "
            "added): its lines do not count toward the elasticity's censoring check"
        )
    if quarantine is None or "product_id" not in quarantine.columns:
        return kept.select("product_id", F.lit(0.0).alias("quarantined_share"))
    has_quantity = "quantity" in quarantine.columns
    units = F.abs("quantity") if has_quantity else F.lit(None)
    # a zero-quantity line sold nothing: it cannot hide a big week
    sold_something = F.coalesce(F.col("quantity"), F.lit(1)) != 0 if has_quantity else F.lit(True)
    dropped = (
        quarantine.where(window & F.col("product_id").isNotNull() & sold_something)
        .groupBy("product_id")
        .agg(F.count("*").alias("_dropped"), F.sum(units).alias("_dropped_units"))
    )
    joined = kept.join(dropped, "product_id", "full").fillna(
        0, subset=["_kept", "_kept_units", "_dropped", "_dropped_units"]
    )
    line_share = F.col("_dropped") / (F.col("_kept") + F.col("_dropped"))
    unit_share = F.col("_dropped_units") / F.nullif(
        F.col("_kept_units") + F.col("_dropped_units"), F.lit(0)
    )
    return joined.select(
        "product_id",
        F.greatest(line_share, F.coalesce(unit_share, F.lit(0.0))).alias("quarantined_share"),
    )


def censor(fits: DataFrame, shares: DataFrame, max_share: float) -> DataFrame:
    """Refuses (status `censored`) a product whose quarantined share exceeds `max_share`.

    Adds `quarantined_share` (0 for products without quarantined lines). The estimate stays in
    `elasticity_raw` for diagnosis; it does not feed shrinkage or prices.
    """
    share = F.coalesce("quarantined_share", F.lit(0.0))
    over = share > F.lit(max_share)
    limit = f"{max_share:.0%}".replace("%", "%%")  # a format_string pattern
    message = F.format_string(
        "%.1f%% of the product's lines or units were quarantined (> "
        f"optimize.max_quarantined_share {limit}): a rule that drops the biggest weeks biases "
        "the estimate; review the quarantine reasons",
        share * 100,
    )
    return (
        fits.join(shares, "product_id", "left")
        .withColumn("quarantined_share", share)
        .withColumn("message", F.when(over, message).otherwise(F.col("message")))
        .withColumn("status", F.when(over, F.lit("censored")).otherwise(F.col("status")))
    )


def shrink(frame: pd.DataFrame, level: float) -> pd.DataFrame:
    """Empirical-Bayes shrinkage of one category's `ok` estimates toward the category's.

    Between-product variance tau^2 by DerSimonian-Laird, at least MIN_BETWEEN_SD^2; category
    elasticity
    m = sum(e_i / (tau^2 + se_i^2)) / sum(1 / (tau^2 + se_i^2)); weight w_i = tau^2 / (tau^2 +
    se_i^2); elasticity = m + w_i (e_i - m) with variance w_i se_i^2 + (1 - w_i)^2 var(m). A weak
    estimate (large se_i, little own price variation) leans on its category. With fewer than
    MIN_CATEGORY_PRODUCTS ok products, or for products without a category, the estimates stay
    as they are (weight 1). Other rows keep null estimates. Returns ELASTICITY_SCHEMA columns.
    """
    out = frame.copy()
    for name in ("elasticity", "std_error", "ci_low", "ci_high", "p_value"):
        out[name] = np.nan
    out["category_elasticity"] = np.nan
    out["shrinkage_weight"] = np.nan
    ok = (out["status"] == "ok").to_numpy()
    e = out.loc[ok, "elasticity_raw"].to_numpy(dtype=float)
    se2 = out.loc[ok, "std_error_raw"].to_numpy(dtype=float) ** 2
    grouped = out["category"].iloc[0] != NO_CATEGORY if len(out) else False
    if e.size >= MIN_CATEGORY_PRODUCTS and grouped:
        w_fixed = 1 / se2
        m_fixed = float((w_fixed * e).sum() / w_fixed.sum())
        q = float((w_fixed * (e - m_fixed) ** 2).sum())
        c = float(w_fixed.sum() - (w_fixed**2).sum() / w_fixed.sum())
        tau2 = max(MIN_BETWEEN_SD**2, (q - (e.size - 1)) / c if c > 0 else 0.0)
        w_random = 1 / (tau2 + se2)
        m = float((w_random * e).sum() / w_random.sum())
        var_m = float(1 / w_random.sum())
        weight = tau2 / (tau2 + se2)
        post = m + weight * (e - m)
        post_var = weight * se2 + (1 - weight) ** 2 * var_m
        out.loc[ok, "category_elasticity"] = m
    else:
        weight, post, post_var = np.ones_like(e), e, se2
    post_se = np.sqrt(post_var)
    z = stats.norm.ppf(0.5 + level / 2)
    out.loc[ok, "shrinkage_weight"] = weight
    out.loc[ok, "elasticity"] = post
    out.loc[ok, "std_error"] = post_se
    out.loc[ok, "ci_low"] = post - z * post_se
    out.loc[ok, "ci_high"] = post + z * post_se
    out.loc[ok, "p_value"] = 2 * stats.norm.sf(np.abs(post) / np.where(post_se > 0, post_se, 1))
    return out[[name for name, _t, _n in ELASTICITY_FIELDS]]


def shrunk(fits: DataFrame, categories: DataFrame, level: float) -> DataFrame:
    """`shrink` per category (products without one form category "(none)")."""

    def per_category(pdf: pd.DataFrame) -> pd.DataFrame:
        return shrink(pdf, level)

    return (
        fits.join(categories, "product_id", "left")
        .withColumn("category", F.coalesce("category", F.lit(NO_CATEGORY)))
        .groupBy("category")
        .applyInPandas(per_category, schema=ELASTICITY_SCHEMA)
    )
