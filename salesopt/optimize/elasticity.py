"""Own-price elasticity per product: a log-log OLS regression fanned out with applyInPandas.

Per product, on days with positive net units:

    log(units) = a + e * log(net_price) + b * promo + trend(t, t^2) + yearly Fourier (2 harmonics)
                 + day-of-week dummies + c * log(1 + traffic) + error

`e` is the elasticity. `traffic` is the units of all other products on the same day, a control
for store-wide demand (customer base growth, holidays) that a product's own trend and seasonality
terms do not capture. Formulas and status rules: docs/pricing-and-replenishment.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import statsmodels.api as sm
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from threadpoolctl import threadpool_limits

from salesopt.config import OptimizeSettings

log = logging.getLogger(__name__)

ELASTICITY_SCHEMA = T.StructType(
    [
        T.StructField("product_id", T.StringType(), False),
        T.StructField("elasticity", T.DoubleType(), True),
        T.StructField("std_error", T.DoubleType(), True),
        T.StructField("p_value", T.DoubleType(), True),
        T.StructField("n_obs", T.LongType(), False),
        T.StructField("n_prices", T.LongType(), False),
        T.StructField("price_cv", T.DoubleType(), True),
        T.StructField("r2", T.DoubleType(), True),
        T.StructField("status", T.StringType(), False),
        T.StructField("message", T.StringType(), True),
    ]
)
OBS_COLUMNS = ("product_id", "date", "units", "price", "promo", "traffic")
STATUSES = ("ok", "insufficient_variation", "too_few_obs", "failed")
YEAR_DAYS = 365.25
FOURIER_HARMONICS = 2


@dataclass(frozen=True)
class ElasticityParams:
    min_obs: int
    min_price_cv: float
    min_distinct_prices: int

    @classmethod
    def from_settings(cls, settings: OptimizeSettings) -> ElasticityParams:
        return cls(settings.min_obs, settings.min_price_cv, settings.min_distinct_prices)


def elasticity_observations(sales_daily: DataFrame, as_of: date, history_days: int) -> DataFrame:
    """Regression input. Grain: one row per (product_id, date) with positive net units.

    `price` is `avg_net_price`; `promo` is 1.0 on days with any discount; `traffic` the net units
    of all other products that day. Zero and negative days are dropped (log needs units > 0).
    """
    first = as_of - timedelta(days=history_days - 1)
    day = Window.partitionBy("date")
    return (
        sales_daily.where(F.col("date").between(F.lit(first), F.lit(as_of)))
        .withColumn("traffic", F.sum(F.greatest("units", F.lit(0))).over(day) - F.col("units"))
        .where((F.col("units") > 0) & (F.col("avg_net_price") > 0))
        .select(
            "product_id",
            "date",
            F.col("units").cast("double").alias("units"),
            F.col("avg_net_price").cast("double").alias("price"),
            (F.coalesce("discount_share", F.lit(0.0)) > 0).cast("double").alias("promo"),
            F.greatest(F.col("traffic"), F.lit(0)).cast("double").alias("traffic"),
        )
    )


def _design(obs: pd.DataFrame) -> pd.DataFrame:
    """Regressors for one product; constant columns other than the intercept are dropped."""
    dates = pd.to_datetime(obs["date"])
    years = ((dates - dates.min()).dt.days / YEAR_DAYS).to_numpy()
    cols: dict[str, np.ndarray] = {
        "log_price": np.log(obs["price"].to_numpy()),
        "promo": obs["promo"].to_numpy(dtype=float),
        "t": years,
        "t2": years**2,
        "log_traffic": np.log1p(obs["traffic"].to_numpy(dtype=float)),
    }
    if years.max() >= 1.0:
        doy = dates.dt.dayofyear.to_numpy()
        for k in range(1, FOURIER_HARMONICS + 1):
            cols[f"sin{k}"] = np.sin(2 * np.pi * k * doy / YEAR_DAYS)
            cols[f"cos{k}"] = np.cos(2 * np.pi * k * doy / YEAR_DAYS)
    dow = dates.dt.dayofweek.to_numpy()
    for d in range(1, 7):
        cols[f"dow{d}"] = (dow == d).astype(float)
    design = pd.DataFrame(cols)
    keep = [c for c in design.columns if c == "log_price" or np.ptp(design[c].to_numpy()) > 0]
    return sm.add_constant(design[keep], has_constant="add")


def shelf_price_cv(obs: pd.DataFrame) -> float | None:
    """Coefficient of variation of the net price on days without promotion.

    Promotion days have their own regressor, which absorbs most of their price cut, so the
    variation that identifies the elasticity is the regular (shelf) price's. Falls back to all
    days when fewer than two regular days exist.
    """
    regular = obs.loc[obs["promo"] <= 0, "price"].to_numpy(dtype=float)
    prices = regular if regular.size >= 2 else obs["price"].to_numpy(dtype=float)
    if prices.size < 2 or prices.mean() <= 0:
        return None
    return float(prices.std() / prices.mean())


def _row(
    product_id: str, n: int, n_prices: int, cv: float | None, status: str, **kw
) -> pd.DataFrame:
    row = {
        "product_id": product_id,
        "elasticity": kw.get("elasticity"),
        "std_error": kw.get("std_error"),
        "p_value": kw.get("p_value"),
        "n_obs": n,
        "n_prices": n_prices,
        "price_cv": cv,
        "r2": kw.get("r2"),
        "status": status,
        "message": kw.get("message"),
    }
    return pd.DataFrame([row], columns=ELASTICITY_SCHEMA.fieldNames())


def fit_elasticity(obs: pd.DataFrame, params: ElasticityParams) -> pd.DataFrame:
    """One product's observations (OBS_COLUMNS) -> one row of ELASTICITY_SCHEMA.

    A product whose data cannot support the fit gets a status row, never an exception.
    """
    product_id = str(obs["product_id"].iloc[0])
    obs = obs[(obs["units"] > 0) & (obs["price"] > 0)].sort_values("date")
    n = len(obs)
    prices = obs["price"].to_numpy(dtype=float)
    n_prices = int(np.unique(np.round(prices, 2)).size)
    cv = shelf_price_cv(obs)
    if n < params.min_obs:
        msg = f"{n} days with sales < min_obs {params.min_obs}"
        return _row(product_id, n, n_prices, cv, "too_few_obs", message=msg)
    if cv is None or cv < params.min_price_cv or n_prices < params.min_distinct_prices:
        msg = f"price cv {cv:.4f}, {n_prices} distinct prices"
        return _row(product_id, n, n_prices, cv, "insufficient_variation", message=msg)
    try:
        with threadpool_limits(limits=1):
            design = _design(obs)
            fit = sm.OLS(np.log(obs["units"].to_numpy(dtype=float)), design).fit()
    except (np.linalg.LinAlgError, ValueError) as exc:
        return _row(product_id, n, n_prices, cv, "failed", message=str(exc)[:200])
    if fit.df_resid < 1 or not np.isfinite(fit.bse["log_price"]):
        msg = f"no residual degrees of freedom ({fit.df_resid:.0f})"
        return _row(product_id, n, n_prices, cv, "failed", message=msg)
    return _row(
        product_id,
        n,
        n_prices,
        cv,
        "ok",
        elasticity=float(fit.params["log_price"]),
        std_error=float(fit.bse["log_price"]),
        p_value=float(fit.pvalues["log_price"]),
        r2=float(fit.rsquared),
    )


def estimate_elasticities(obs: DataFrame, params: ElasticityParams, partitions: int) -> DataFrame:
    """Fans `fit_elasticity` out over products. Grain: one row per product with observations."""

    def per_product(pdf: pd.DataFrame) -> pd.DataFrame:  # a plain function: no type-hint warning
        return fit_elasticity(pdf, params=params)

    return (
        obs.select(*OBS_COLUMNS)
        .repartition(partitions, "product_id")
        .groupBy("product_id")
        .applyInPandas(per_product, schema=ELASTICITY_SCHEMA)
    )
