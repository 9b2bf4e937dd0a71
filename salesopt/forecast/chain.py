"""One series in, one forecast out: checks, model families, sanity bound and the fallback chain.

Order of decisions (docs/forecasting.md):
no observations or all zero -> `zero`; shorter than `min_obs` -> `seasonal_naive` if it has a
full season, else `mean`; constant -> `mean`; share of zero periods above `intermittent_share`
-> `tsb` (Croston and SBA beside it for the backtest); otherwise the families (automatic
ARIMA, ETS, Theta) on log1p(units), served as the mean (in units) of those that fit, converge
and stay within `explode_factor` x the largest observation. With no eligible family, or when
the time limit passes, it falls back to the seasonal naive (else mean). Every result is
truncated at zero and its intervals are ordered so that lower <= yhat <= upper.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from salesopt.forecast import fallbacks, families, intermittent
from salesopt.forecast.fallbacks import Intervals
from salesopt.forecast.families import FAMILIES, Member
from salesopt.forecast.selection import SEASONALITY, Seasonality, TimeLimitError


@dataclass(frozen=True)
class ChainSpec:
    """What the chain needs from ForecastSettings."""

    frequency: str = "weekly"
    levels: tuple[float, ...] = (0.8, 0.95)
    order: tuple[int, int, int] | None = None
    time_limit_s: float = 20.0
    min_obs: int = 16
    max_models: int = 16
    max_iter: int = 100
    explode_factor: float = 3.0
    intermittent_share: float = 0.5
    families: tuple[str, ...] = FAMILIES

    @property
    def season(self) -> Seasonality:
        return SEASONALITY[self.frequency]


@dataclass
class Outcome:
    """A forecast in original units with how it was made."""

    status: str  # ok | fallback
    model: str
    point: np.ndarray
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]
    order: str | None = None
    reason: str | None = None
    aicc: float | None = None
    notes: list[str] = field(default_factory=list)
    # each member's forecast in units, and the structures to refit (families of a combination;
    # Croston, SBA and TSB with no structure for an intermittent series, which marks it so)
    members: dict[str, tuple[np.ndarray, Intervals]] = field(default_factory=dict)
    specs: dict[str, Any] = field(default_factory=dict)
    families_tried: bool = False  # the series reached the families (served by them or not)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raises TimeLimitError in this thread after `seconds` (SIGALRM; main thread on Unix).

    Elsewhere only the cooperative deadline checks inside the search and the optimizer apply.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _raise(_signum: int, _frame: object) -> None:
        raise TimeLimitError

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _fallback(y: np.ndarray, horizon: int, spec: ChainSpec, reason: str) -> Outcome:
    lag = spec.season.naive_lag
    if len(y) >= lag:
        point, iv = fallbacks.seasonal_naive(y, horizon, spec.levels, lag)
        return Outcome("fallback", "seasonal_naive", point, iv, reason=reason)
    point, iv = fallbacks.mean_forecast(y, horizon, spec.levels, lag)
    return Outcome("fallback", "mean", point, iv, reason=reason)


def _members(
    y: np.ndarray, horizon: int, spec: ChainSpec, deadline: float, fixed: dict[str, Any] | None
) -> tuple[list[tuple[Member, np.ndarray]], list[str]]:
    """Each family's forecast with its point in units; notes for the families left out."""
    z = np.log1p(y)
    bound = spec.explode_factor * max(float(y.max()), 1.0)
    kept: list[tuple[Member, np.ndarray]] = []
    notes: list[str] = []
    for family in spec.families:
        if fixed is not None and family not in fixed:
            continue
        given = fixed.get(family) if fixed is not None else None
        if family == "arima":
            member = families.arima(
                z, horizon, spec.levels, spec.season, deadline, order=spec.order,
                max_models=spec.max_models, max_iter=spec.max_iter, spec=given,
            )  # fmt: skip
        elif family == "ets":
            member = families.ets(z, horizon, spec.levels, spec.season, deadline, spec=given)
        else:
            member = families.theta(z, horizon, spec.levels, spec.season, deadline, spec=given)
        if member is None:
            notes.append(f"{family} could not be fitted")
            continue
        point = np.expm1(member.mean)
        if not np.all(np.isfinite(point)) or float(point.max()) > bound:
            notes.append(f"{family} forecast beyond {bound:.4g} (explode_factor)")
            continue
        notes.extend(member.notes)
        kept.append((member, point))
    return kept, notes


def _combined(
    y: np.ndarray, horizon: int, spec: ChainSpec, deadline: float, fixed: dict[str, Any] | None
) -> Outcome:
    """The served forecast: the mean, in units, of the eligible families' forecasts.

    Interval bounds are the means of the families' bounds. Because the point is a plain mean,
    its absolute error is never above the mean of the families' absolute errors (per period,
    so per fold and per product). A single eligible family is served alone; none falls back
    to the seasonal naive (else the mean).
    """
    kept, notes = _members(y, horizon, spec, deadline, fixed)
    if not kept:
        return _fallback(y, horizon, spec, "; ".join(notes) or "no model family to fit")
    members = {
        m.family: (np.maximum(point, 0.0),
                   {lv: (np.expm1(lo), np.expm1(hi)) for lv, (lo, hi) in m.intervals.items()})
        for m, point in kept
    }  # fmt: skip
    point = np.mean([p for p, _ in members.values()], axis=0)
    intervals = {
        lv: (np.mean([iv[lv][0] for _, iv in members.values()], axis=0),
             np.mean([iv[lv][1] for _, iv in members.values()], axis=0))
        for lv in spec.levels
    }  # fmt: skip
    names = list(members)
    model = "combination" if len(names) > 1 else names[0]
    label = " + ".join(m.label for m, _ in kept)
    why = f"mean of {', '.join(names)}" if len(names) > 1 else f"only {names[0]} eligible"
    aicc = next((m.aicc for m, _ in kept if m.family == "arima"), None)
    out = Outcome("ok", model, point, intervals, label, None, aicc, [why, *notes])
    out.members = members
    out.specs = {m.family: m.spec for m, _ in kept}
    return out


def _intermittent(y: np.ndarray, horizon: int, spec: ChainSpec, zero_share: float) -> Outcome:
    """TSB served; Croston and SBA kept as members, so the backtest compares all three."""
    runs = intermittent.forecasts(y, horizon, spec.levels, spec.season.naive_lag)
    point, iv, label = runs[intermittent.SERVED]
    others = ", ".join(m for m in runs if m != intermittent.SERVED)
    why = f"{intermittent.SERVED} served ({others} compared in the backtest)"
    out = Outcome("ok", intermittent.SERVED, point, iv, label,
                  f"intermittent: {zero_share:.0%} zero", notes=[why])  # fmt: skip
    out.members = {method: (p, bounds) for method, (p, bounds, _) in runs.items()}
    out.specs = dict.fromkeys(runs)  # no structure to keep; marks the series as intermittent
    return out


def choose(
    y: np.ndarray, horizon: int, spec: ChainSpec, fixed: dict[str, Any] | None = None
) -> Outcome:
    """The forecast for `y` (complete, zero-filled, non-negative, no NaN) by the chain above.

    `fixed` (family -> structure, from `Outcome.specs`) refits those structures instead of
    selecting them again, and fits no other family (`{}`: none); the backtest uses it. It also
    keeps the whole history's intermittency decision: intermittent methods in `fixed` take the
    intermittent path whatever the share of zeros, families (or `{}`) never do.
    """
    if len(y) == 0 or not np.any(y > 0):
        point, iv = fallbacks.zero(horizon, spec.levels)
        reason = "no complete period of history" if len(y) == 0 else "all zero"
        return Outcome("fallback", "zero", point, iv, reason=reason)
    if len(y) < spec.min_obs:
        return _fallback(y, horizon, spec, f"too short: {len(y)} < min_obs {spec.min_obs}")
    if np.ptp(y) == 0:
        point, iv = fallbacks.mean_forecast(y, horizon, spec.levels, len(y))
        return Outcome("fallback", "mean", point, iv, reason="constant")
    zero_share = float(np.mean(y == 0))
    if fixed is None:
        is_intermittent = zero_share > spec.intermittent_share
    else:
        is_intermittent = bool(set(fixed) & set(intermittent.METHODS))
    if is_intermittent:
        return _intermittent(y, horizon, spec, zero_share)
    deadline = time.monotonic() + spec.time_limit_s
    try:
        with time_limit(spec.time_limit_s + 0.5):
            out = _combined(y, horizon, spec, deadline, fixed)
    except TimeLimitError:
        out = _fallback(y, horizon, spec, f"time limit {spec.time_limit_s:g}s exceeded")
    out.families_tried = True
    return out


def finish(outcome: Outcome) -> Outcome:
    """Truncates at zero and orders the intervals around the point forecast."""
    point = np.maximum(outcome.point, 0.0)
    intervals = {}
    for lv, (lo, hi) in outcome.intervals.items():
        intervals[lv] = (np.clip(np.minimum(lo, point), 0.0, None), np.maximum(hi, point))
    outcome.point, outcome.intervals = point, intervals
    return outcome
