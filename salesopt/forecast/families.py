"""The three model families of the served forecast, all from statsmodels, on the log1p scale.

- `arima`: the automatic ARIMA of `selection` (stepwise AICc search, MLE of the best ranked);
- `ets`: `ETSModel` with additive error (on log1p, i.e. multiplicative in units), trend none or
  damped additive, seasonal additive when the season can be estimated; chosen by AICc;
- `theta`: `ThetaModel` (the classical Theta method: SES with half the linear trend), with its
  own seasonality test and additive deseasonalising.

Monthly series use the native seasonal form (period 12). Weekly and daily series are adjusted
with the Fourier terms of their season first (`fourier_adjust`; 52.18 weeks is not an integer
period), the non-seasonal model is fitted to what is left and the season is added back.

Every family returns a `Member` (mean and interval bounds on the log1p scale, a label and the
`spec` needed to refit the same structure on a shorter history, which the backtest does) or
None when it cannot be fitted or does not converge after its retries.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.tools.decorators import cache_readonly
from statsmodels.tsa.exponential_smoothing.ets import ETSModel, ETSResults, ETSResultsWrapper
from statsmodels.tsa.forecasting.theta import ThetaModel
from statsmodels.tsa.statespace.sarimax import SARIMAX

from salesopt.forecast.selection import (
    Fit,
    Seasonality,
    TimeLimitError,
    fit_final,
    forecast_fit,
    fourier_adjust,
    score_candidate,
    select,
)

FAMILIES = ("arima", "ets", "theta")
FINAL_CANDIDATES = 3  # ranked ARIMA candidates tried by MLE before the family gives up
ETS_INITIALISATIONS = ("estimated", "heuristic")  # a fit that does not converge: the next

Intervals = dict[float, tuple[np.ndarray, np.ndarray]]


@dataclass
class Member:
    """One family's forecast on the log1p scale."""

    family: str
    label: str
    mean: np.ndarray
    intervals: Intervals
    spec: Any  # structure to refit on a shorter history (backtest)
    aicc: float | None = None
    notes: list[str] = field(default_factory=list)


def _check(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise TimeLimitError


# --- ARIMA ---------------------------------------------------------------------------------------


def arima(
    z: np.ndarray,
    horizon: int,
    levels: tuple[float, ...],
    season: Seasonality,
    deadline: float,
    *,
    order: tuple[int, int, int] | None = None,
    max_models: int = 16,
    max_iter: int = 100,
    spec: Fit | None = None,
) -> Member | None:
    """Automatic ARIMA (or the structure of `spec` refitted). None when nothing converges."""
    if spec is not None:
        approx = score_candidate(z, spec.candidate, spec.d, spec.sd, season)
        ranked = [approx] if approx is not None else []
        if approx is not None:  # warm start from the whole history's estimates, then cold
            warm = np.asarray(spec.result.params, dtype=float)
            if warm.shape == np.shape(approx.result):
                ranked.insert(0, replace(approx, result=warm))
    else:
        ranked, _ = select(z, season, deadline, order, max_models)
    for i, approx in enumerate(ranked[:FINAL_CANDIDATES]):
        fit = fit_final(z, approx, season, deadline, max_iter)
        if fit is None:
            continue
        mean, iv = forecast_fit(fit, len(z), horizon, season, levels)
        notes = ["best ARIMA candidate did not converge"] if i and spec is None else []
        return Member("arima", fit.label(season), mean, iv, fit, fit.aicc, notes)
    return None


# --- ETS -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EtsSpec:
    damped: bool
    seasonal: bool
    fourier_k: int = 0
    # where the whole-history fit ended: a refit on a shorter history starts there
    init: str | None = field(default=None, compare=False)
    start: tuple[float, ...] | None = field(default=None, compare=False, repr=False)

    def label(self) -> str:
        return f"ETS(A,{'Ad' if self.damped else 'N'},{'A' if self.seasonal else 'N'})"


class _EtsResults(ETSResults):
    """ETSResults without the parameter covariance, a numerical Hessian statsmodels computes
    for every fit; forecasts, intervals and AICc do not use it."""

    @cache_readonly
    def cov_params_approx(self) -> np.ndarray:
        return np.full((self.k_params, self.k_params), np.nan)


class _Ets(ETSModel):
    """ETSModel whose fits return `_EtsResults`."""

    @property
    def _res_classes(self) -> dict[str, Any]:
        return {"fit": (_EtsResults, ETSResultsWrapper)}


def _from_undamped(model: ETSModel, undamped: Any | None) -> np.ndarray | None:
    """Start values for a damped model: the undamped fit's estimates, no trend yet."""
    if undamped is None or undamped.model.initialization_method != model.initialization_method:
        return None
    known = dict(zip(undamped.model.param_names, np.asarray(undamped.params), strict=True))
    start = np.asarray(model.start_params, dtype=float).copy()
    for i, name in enumerate(model.param_names):
        if name in known:
            start[i] = known[name]
        elif name == "initial_trend":
            start[i] = 0.0
    names = list(model.param_names)
    alpha, beta = names.index("smoothing_level"), names.index("smoothing_trend")
    start[beta] = min(start[beta], 0.5 * start[alpha])  # the trend's constant stays below alpha
    return start


def _ets_fit(
    z: pd.Series, spec: EtsSpec, period: int, deadline: float, undamped: Any | None = None
) -> Any | None:
    """MLE with estimated initial states; if that does not converge, again from heuristic ones.

    A spec carrying the whole-history estimates is tried from them first (with their
    initialisation); a damped model starts from the `undamped` fit of the same form when given.
    """
    attempts: list[tuple[str, bool]] = [(init, False) for init in ETS_INITIALISATIONS]
    if spec.init is not None and spec.start:  # the whole history's estimates first
        attempts.insert(0, (spec.init, True))
    for init, warm in attempts:
        _check(deadline)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = _Ets(
                    z,
                    error="add",
                    trend="add" if spec.damped else None,
                    damped_trend=spec.damped,
                    seasonal="add" if spec.seasonal else None,
                    seasonal_periods=period if spec.seasonal else None,
                    initialization_method=init,
                )
                start: np.ndarray | None = None
                if warm:
                    start = np.asarray(spec.start)
                elif spec.damped:
                    start = _from_undamped(model, undamped)
                res = model.fit(start_params=start, disp=False, maxiter=1000)
            except (ValueError, np.linalg.LinAlgError):
                continue
        if res.mle_retvals.get("converged", True) and np.isfinite(res.aicc):
            return res
    return None


def ets(
    z: np.ndarray,
    horizon: int,
    levels: tuple[float, ...],
    season: Seasonality,
    deadline: float,
    *,
    spec: EtsSpec | None = None,
) -> Member | None:
    """ETS chosen by AICc among trend none / damped and seasonal none / additive."""
    n = len(z)
    adj = fourier_adjust(z, season.period, spec.fourier_k if spec else None)
    base = z - adj.at(np.arange(n), season.period)
    period = season.s
    can_season = bool(period) and n >= 2 * period + 2
    if spec is not None:
        specs = [spec]
    else:
        seasonal = [False, True] if can_season else [False]
        specs = [EtsSpec(damped, s, adj.k) for s in seasonal for damped in (False, True)]
    best: tuple[Any, EtsSpec] | None = None
    series = pd.Series(base)
    undamped: dict[bool, Any] = {}  # seasonal -> fit without trend (specs list it first)
    for cand in specs:
        if cand.damped and n < 10:
            continue
        res = _ets_fit(series, cand, period, deadline, undamped.get(cand.seasonal))
        if res is not None and not cand.damped:
            undamped[cand.seasonal] = res
        if res is not None and (best is None or res.aicc < best[0].aicc):
            best = (res, cand)
    if best is None:
        return None
    res, chosen = best
    frame = [res.get_prediction(start=n, end=n + horizon - 1).summary_frame(alpha=1 - lv)
             for lv in levels]  # fmt: skip
    shift = adj.at(np.arange(n, n + horizon), season.period)
    mean = np.asarray(frame[0]["mean"], dtype=float) + shift
    iv = {
        lv: (np.asarray(f["pi_lower"], dtype=float) + shift,
             np.asarray(f["pi_upper"], dtype=float) + shift)
        for lv, f in zip(levels, frame, strict=True)
    }  # fmt: skip
    label = chosen.label() + (f" K={adj.k}" if adj.k else "")
    fitted = replace(chosen, init=res.model.initialization_method,
                     start=tuple(float(v) for v in res.params))  # fmt: skip
    return Member("ets", label, mean, iv, fitted, float(res.aicc))


# --- Theta ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThetaSpec:
    deseasonalize: bool
    fourier_k: int = 0
    # the whole-history estimates of the IMA(1,1) whose variance scales Theta's intervals
    variance_start: tuple[float, ...] | None = field(default=None, compare=False, repr=False)


def _theta_variance(res: Any, y: np.ndarray, start: tuple[float, ...] | None) -> tuple[float, ...]:
    """Set Theta's residual variance as `ThetaModelResults.sigma2` does (MLE of an IMA(1,1)
    with drift), without parameter covariances, from `start` first when given; its estimates."""
    warm = [] if start is None else [np.asarray(start)]
    for begin in [*warm, None]:  # a warm start that fails or gives non-finite values: cold
        try:
            ima = SARIMAX(y, order=(0, 1, 1), trend="c").fit(
                start_params=begin, disp=False, cov_type="none"
            )
        except (ValueError, np.linalg.LinAlgError):
            if begin is None:
                raise
            continue
        params = tuple(float(v) for v in np.asarray(ima.params))
        if begin is None or np.all(np.isfinite(params)):
            break
    res._sigma2 = params[-1]
    return params


def theta(
    z: np.ndarray,
    horizon: int,
    levels: tuple[float, ...],
    season: Seasonality,
    deadline: float,
    *,
    spec: ThetaSpec | None = None,
) -> Member | None:
    """The Theta method; monthly seasonality by ThetaModel's own test (or `spec`)."""
    _check(deadline)
    n = len(z)
    adj = fourier_adjust(z, season.period, spec.fourier_k if spec else None)
    base = z - adj.at(np.arange(n), season.period)
    period = season.s if season.s and n >= 2 * season.s else 1
    deseason = (spec.deseasonalize and period > 1) if spec is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = ThetaModel(
                base,
                period=period,
                deseasonalize=bool(deseason) if deseason is not None else period > 1,
                use_test=deseason is None,
                method="additive",
            )
            res = model.fit()
            variance = _theta_variance(res, model._y, spec.variance_start if spec else None)
            mean = np.asarray(res.forecast(horizon), dtype=float)
            bounds = {
                lv: np.asarray(res.prediction_intervals(horizon, alpha=1 - lv), dtype=float)
                for lv in levels
            }
        except (ValueError, np.linalg.LinAlgError):
            return None
    if not np.all(np.isfinite(mean)) or not all(np.all(np.isfinite(b)) for b in bounds.values()):
        return None
    shift = adj.at(np.arange(n, n + horizon), season.period)
    # the outcome of ThetaModel's seasonality test is only kept in this attribute
    chosen = ThetaSpec(bool(getattr(model, "_has_seasonality", False)), adj.k, variance)
    iv = {lv: (b[:, 0] + shift, b[:, 1] + shift) for lv, b in bounds.items()}
    label = (
        "Theta" + (" seasonal" if chosen.deseasonalize else "") + (f" K={adj.k}" if adj.k else "")
    )
    return Member("theta", label, mean + shift, iv, chosen)
