"""Automatic ARIMA selection the way auto.arima does it, made fast for many short series.

Differencing orders are chosen by tests first (D by seasonal strength, then d by KPSS on the
seasonally differenced series); only then are (p, q)(P, Q) and the number of Fourier pairs K
compared by AICc, all with the same d and D, because information criteria of models fitted to
differently differenced data are not comparable. The search is stepwise (Hyndman-Khandakar): a few
starting models, then neighbours that change one order by one, until no neighbour improves AICc,
the model cap is hit, or the deadline passes.

All fits are on `log1p(units)`: forecasts and intervals map back with `expm1`, which keeps them
non-negative and makes a multiplicative season additive.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from statsmodels.tsa.statespace.sarimax import SARIMAX
from statsmodels.tsa.stattools import kpss

KPSS_ALPHA = 0.05
SEASONAL_STRENGTH_THRESHOLD = 0.64  # the threshold of R forecast::nsdiffs
MAX_D = 1
MAX_P = MAX_Q = 2
MAX_SP = MAX_SQ = 1
MAX_K = 3


class TimeLimitError(Exception):
    """The per-series time budget ran out."""


@dataclass(frozen=True)
class Seasonality:
    """How a frequency models its season: seasonal ARIMA lag `s` or Fourier terms of `period`."""

    s: int  # seasonal ARIMA period (0 = none)
    period: float  # Fourier period (0 = none)
    naive_lag: int  # lag of the seasonal-naive baseline


SEASONALITY = {
    "monthly": Seasonality(s=12, period=0.0, naive_lag=12),
    "weekly": Seasonality(s=0, period=365.25 / 7.0, naive_lag=52),
    "daily": Seasonality(s=0, period=7.0, naive_lag=7),
}


@dataclass(frozen=True)
class Candidate:
    p: int
    q: int
    sp: int = 0  # seasonal AR order P
    sq: int = 0  # seasonal MA order Q
    k: int = 0  # Fourier pairs


@dataclass
class Fit:
    """A fitted candidate with everything needed to forecast."""

    candidate: Candidate
    d: int
    sd: int
    aicc: float
    result: Any
    beta: np.ndarray | None = None
    converged: bool = True

    def label(self, season: Seasonality) -> str:
        c = self.candidate
        if season.s:
            return f"({c.p},{self.d},{c.q})({c.sp},{self.sd},{c.sq})[{season.s}]"
        return f"({c.p},{self.d},{c.q}) K={c.k}"


def fourier(t: np.ndarray, period: float, k: int) -> np.ndarray | None:
    """sin/cos pairs 1..k of a season of `period` steps at integer times `t`."""
    if k == 0 or period <= 0:
        return None
    cols = []
    for j in range(1, k + 1):
        angle = 2.0 * np.pi * j * t / period
        cols.extend([np.sin(angle), np.cos(angle)])
    return np.column_stack(cols)


def seasonal_strength(z: np.ndarray, s: int) -> float:
    """Strength of a period-`s` season (0..1): 1 - var(remainder) / var(season + remainder)."""
    if s < 2 or len(z) < 2 * s + 1:
        return 0.0
    from statsmodels.tsa.seasonal import STL

    res = STL(z, period=s, robust=False).fit()
    detrended = res.seasonal + res.resid
    denom = float(np.var(detrended))
    return max(0.0, 1.0 - float(np.var(res.resid)) / denom) if denom > 0 else 0.0


def choose_sd(z: np.ndarray, season: Seasonality) -> int:
    """Seasonal differencing order D: 1 when a seasonal ARIMA's season is strong."""
    if not season.s:
        return 0
    return int(seasonal_strength(z, season.s) > SEASONAL_STRENGTH_THRESHOLD)


def deseasonalised(z: np.ndarray, season: Seasonality) -> np.ndarray:
    """`z` without its Fourier season (weekly, daily), for the differencing test.

    Like auto.arima with Fourier regressors, the test runs on what the regression leaves: a
    strong season left in would hide a trend from KPSS. The season is fitted together with a
    level and a linear trend (`fourier_adjust`) and only the season is removed.
    """
    adj = fourier_adjust(z, season.period)
    return z - adj.at(np.arange(len(z)), season.period)


@dataclass(frozen=True)
class Adjustment:
    """Fourier season removed before fitting: `k` pairs with coefficients `beta`."""

    k: int
    beta: np.ndarray

    def at(self, t: np.ndarray, period: float) -> np.ndarray:
        x = fourier(t.astype(float), period, self.k)
        return np.zeros(len(t)) if x is None else x @ self.beta


def fourier_adjust(z: np.ndarray, period: float, k: int | None = None) -> Adjustment:
    """The Fourier season of `z`: `k` pairs (else `fourier_pairs`), fitted with level and trend."""
    n = len(z)
    k = fourier_pairs(z, period) if k is None else k
    t = np.arange(n, dtype=float)
    x = fourier(t, period, k)
    if x is None:
        return Adjustment(0, np.zeros(0))
    design = np.column_stack([np.ones(n), t, x])
    coef = np.linalg.lstsq(design, z, rcond=None)[0]
    return Adjustment(k, np.asarray(coef[2:], dtype=float))


def fourier_pairs(z: np.ndarray, period: float) -> int:
    """Fourier pairs 0..MAX_K by AICc of an OLS on level + linear trend + pairs.

    0 when the series is shorter than one season plus the coefficients.
    """
    n = len(z)
    t = np.arange(n, dtype=float)
    if period <= 0 or n < period + 2 * MAX_K + 3:
        return 0
    best_k, best = 0, float("inf")
    for k in range(MAX_K + 1):
        x = fourier(t, period, k)
        design = np.column_stack([np.ones(n), t] + ([x] if x is not None else []))
        coef = np.linalg.lstsq(design, z, rcond=None)[0]
        rss = float(np.sum((z - design @ coef) ** 2))
        score = aicc(-0.5 * n * np.log(max(rss, 1e-12) / n), design.shape[1] + 1, n)
        if score < best:
            best_k, best = k, score
    return best_k


def choose_d(z: np.ndarray) -> int:
    """Differencing order d by repeated KPSS level-stationarity tests (like forecast::ndiffs)."""
    d = 0
    x = z
    while d < MAX_D and len(x) > 8 and np.ptp(x) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # p-value outside the table is still a usable bound
            p_value = kpss(x, regression="c", nlags="auto")[1]
        if p_value >= KPSS_ALPHA:
            break
        d += 1
        x = np.diff(x)
    return d


def regression(z: np.ndarray, d: int, season: Seasonality, k: int) -> np.ndarray | None:
    """OLS coefficients of the Fourier terms on the d-times differenced series (None if k = 0)."""
    x = fourier(np.arange(len(z), dtype=float), season.period, k)
    if x is None:
        return None
    zd, xd = (np.diff(z, d), np.diff(x, d, axis=0)) if d else (z, x)
    design = np.column_stack([np.ones(len(zd)), xd])
    coef = np.linalg.lstsq(design, zd, rcond=None)[0]
    return np.asarray(coef[1:], dtype=float)


def aicc(loglike: float, k: int, n: int) -> float:
    """Corrected AIC; infinite when there are too few observations for k parameters."""
    if n - k - 1 <= 0:
        return float("inf")
    return -2.0 * loglike + 2.0 * k + 2.0 * k * (k + 1) / (n - k - 1)


def _model(z: np.ndarray, cand: Candidate, d: int, sd: int, season: Seasonality) -> Any:
    """The SARIMAX for a candidate, fitted to what the Fourier regression leaves of `z`."""
    beta = regression(z, d, season, cand.k)
    x = fourier(np.arange(len(z), dtype=float), season.period, cand.k)
    resid = z - x @ beta if x is not None and beta is not None else z
    seasonal = (cand.sp, sd, cand.sq, season.s) if season.s else (0, 0, 0, 0)
    trend = "c" if d + sd <= 1 else "n"
    model = SARIMAX(
        resid,
        order=(cand.p, d, cand.q),
        seasonal_order=seasonal,
        trend=trend,
        concentrate_scale=True,
    )
    return model, beta


def _aicc_of(llf: float, n_params: int, cand: Candidate, n_eff: int) -> float:
    """AICc counting ARIMA parameters, the concentrated variance and 2K Fourier coefficients."""
    return aicc(llf, n_params + 1 + 2 * cand.k, n_eff)


def score_candidate(
    z: np.ndarray, cand: Candidate, d: int, sd: int, season: Seasonality
) -> Fit | None:
    """Approximate AICc: the exact likelihood at fast regression-based (CSS) estimates.

    Like auto.arima's `approximation = TRUE`: the search ranks models without a maximum
    likelihood fit each; only the winner is fitted by MLE (`fit_final`).
    """
    n_eff = len(z) - d - sd * season.s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model, beta = _model(z, cand, d, sd, season)
            params = np.asarray(model.start_params, dtype=float)
            llf = float(model.loglike(params))
        except (ValueError, np.linalg.LinAlgError):
            return None
    score = _aicc_of(llf, len(params), cand, n_eff)
    if not np.isfinite(score):
        return None
    return Fit(cand, d, sd, score, params, beta, converged=False)


RETRY_METHOD = "nm"  # Nelder-Mead from where L-BFGS stopped, when L-BFGS does not converge
# L-BFGS stops when a step improves the mean log-likelihood by less than FACTR x machine
# epsilon relative to max(|f|, 1) (scipy: 1e7)
FACTR = 1e9
RETRY_ITER_FACTOR = 10  # its iterations: this x max_iter (it needs many more, each cheap)


def fit_final(
    z: np.ndarray, approx: Fit, season: Seasonality, deadline: float, max_iter: int
) -> Fit | None:
    """Maximum likelihood fit of a ranked candidate; None if it fails or does not converge.

    L-BFGS from the fast estimates first; if it does not converge, Nelder-Mead from where it
    stopped. The optimizers check the deadline at every iteration and raise `TimeLimitError`.
    """

    def check(*_: Any) -> None:
        if time.monotonic() > deadline:
            raise TimeLimitError

    cand = approx.candidate
    n_eff = len(z) - approx.d - approx.sd * season.s
    start = approx.result
    res = None
    for method, iterations in (("lbfgs", max_iter), (RETRY_METHOD, RETRY_ITER_FACTOR * max_iter)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model, beta = _model(z, cand, approx.d, approx.sd, season)
                res = model.fit(
                    start_params=start,
                    disp=False,
                    maxiter=iterations,
                    method=method,
                    callback=check,
                    cov_type="none",  # parameter covariances are not used: no numerical Hessian
                    **({"factr": FACTR} if method == "lbfgs" else {}),
                )
            except (ValueError, np.linalg.LinAlgError):
                return None
        if res.mle_retvals.get("converged", False):
            break
        start = np.asarray(res.params, dtype=float)
    assert res is not None
    score = _aicc_of(float(res.llf), len(res.params), cand, n_eff)
    if not res.mle_retvals.get("converged", False) or not np.isfinite(score):
        return None
    return Fit(cand, approx.d, approx.sd, score, res, beta, converged=True)


def _neighbours(c: Candidate, season: Seasonality, fixed_pq: bool) -> list[Candidate]:
    steps: list[dict[str, int]] = []
    if not fixed_pq:
        steps += [{"p": 1}, {"p": -1}, {"q": 1}, {"q": -1}, {"p": 1, "q": 1}, {"p": -1, "q": -1}]
    if season.s:
        steps += [{"sp": 1}, {"sp": -1}, {"sq": 1}, {"sq": -1}]
    if season.period:
        steps += [{"k": 1}, {"k": -1}]
    limits = {"p": MAX_P, "q": MAX_Q, "sp": MAX_SP, "sq": MAX_SQ, "k": MAX_K}
    out = []
    for step in steps:
        values = {f: getattr(c, f) + step.get(f, 0) for f in limits}
        if all(0 <= values[f] <= limits[f] for f in limits):
            out.append(Candidate(**values))
    return out


def _starts(season: Seasonality, order: tuple[int, int, int] | None) -> list[Candidate]:
    s1 = 1 if season.s else 0
    k = 2 if season.period else 0
    if order is not None:
        p, _, q = order
        return [Candidate(p, q, s1, 0, k), Candidate(p, q)]
    return [
        Candidate(1, 1, s1, s1, k),
        Candidate(0, 0),
        Candidate(1, 0, s1, 0, k),
        Candidate(0, 1, 0, s1, k),
    ]


def select(
    z: np.ndarray,
    season: Seasonality,
    deadline: float,
    order: tuple[int, int, int] | None = None,
    max_models: int = 16,
) -> tuple[list[Fit], int]:
    """Candidates ranked by approximate AICc (best first) and the number of models tried.

    d and D come from tests (d from a fixed `order` when given); the stepwise search moves to
    the best neighbour until none improves AICc or `max_models` is reached.
    """
    sd = choose_sd(z, season)
    zs = z[season.s :] - z[: -season.s] if sd else z
    d = order[1] if order is not None else choose_d(deseasonalised(zs, season))
    scored: list[Fit] = []
    expanded: Candidate | None = None
    tried: set[Candidate] = set()
    queue = _starts(season, order)
    while queue and len(tried) < max_models:
        cand = queue.pop(0)
        if cand in tried:
            continue
        tried.add(cand)
        if time.monotonic() > deadline:
            raise TimeLimitError
        fit = score_candidate(z, cand, d, sd, season)
        if fit is not None:
            scored.append(fit)
        if not queue and scored:
            best = min(scored, key=lambda f: f.aicc).candidate
            if best != expanded:
                expanded = best
                queue = [c for c in _neighbours(best, season, order is not None) if c not in tried]
    return sorted(scored, key=lambda f: f.aicc), len(tried)


def forecast_fit(
    fit: Fit, n: int, horizon: int, season: Seasonality, levels: tuple[float, ...]
) -> tuple[np.ndarray, dict[float, tuple[np.ndarray, np.ndarray]]]:
    """Point forecast and intervals on the log1p scale for steps 1..horizon after `n` points."""
    pred = fit.result.get_forecast(steps=horizon)
    x = fourier(np.arange(n, n + horizon, dtype=float), season.period, fit.candidate.k)
    shift = x @ fit.beta if x is not None and fit.beta is not None else np.zeros(horizon)
    mean = np.asarray(pred.predicted_mean, dtype=float) + shift
    intervals = {}
    for level in levels:
        ci = np.asarray(pred.conf_int(alpha=1.0 - level), dtype=float)
        intervals[level] = (ci[:, 0] + shift, ci[:, 1] + shift)
    return mean, intervals
