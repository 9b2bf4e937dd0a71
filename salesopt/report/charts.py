"""matplotlib charts for the report (PNG files, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd

from salesopt.report.data import ReportData

FORECAST_LABELS = {"model": "served", "seasonal_naive": "seasonal naive"}
COLORS = ("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _money_axis(ax: plt.Axes, currency: str) -> None:
    ax.set_ylim(bottom=0)  # totals are read against zero
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.set_ylabel(f"net revenue ({currency})" if currency else "net revenue")


def weekly_revenue(data: ReportData, out: Path) -> Path | None:
    if data.weekly_total is None or data.weekly_total.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot(
        pd.to_datetime(data.weekly_total["week_start"]),
        data.weekly_total["revenue"],
        color=COLORS[0],
    )
    ax.set_title("Net revenue per week (all products)")
    _money_axis(ax, data.currency)
    ax.grid(alpha=0.3)
    return _save(fig, out / "weekly_revenue.png")


def history_and_forecast(data: ReportData, out: Path) -> Path | None:
    if data.top_history is None or data.top_history.empty:
        return None
    products = list(dict.fromkeys(data.top_history["product_id"]))
    fig, axes = plt.subplots(len(products), 1, figsize=(9, 2.4 * len(products)), squeeze=False)
    for ax, product in zip(axes[:, 0], products, strict=True):
        hist = data.top_history[data.top_history["product_id"] == product]
        ax.plot(pd.to_datetime(hist["week_start"]), hist["units"], color=COLORS[0], label="actual")
        if data.top_forecast is not None and not data.top_forecast.empty:
            fc = data.top_forecast[data.top_forecast["product_id"] == product]
            ds = pd.to_datetime(fc["ds"])
            ax.plot(ds, fc["yhat"], color=COLORS[1], label="forecast")
            level = round(float(fc["level"].iloc[0]) * 100) if len(fc) else 0
            ax.fill_between(ds, fc["yhat_lower"], fc["yhat_upper"], color=COLORS[1], alpha=0.2,
                            label=f"{level}% interval")  # fmt: skip
        title = f"{product} {data.names.get(product, '')}".strip().replace("$", r"\$")
        ax.set_title(f"{title}: weekly units")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _save(fig, out / "forecasts.png")


def forecast_accuracy(data: ReportData, out: Path) -> Path | None:
    if data.forecast_overall is None or data.forecast_overall.empty:
        return None
    df = data.forecast_overall.set_index("method")
    df.index = [FORECAST_LABELS.get(m, m) for m in df.index]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(df.index, df["mase"], color=[COLORS[i % len(COLORS)] for i in range(len(df))])
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="seasonal naive = 1")
    ax.set_ylim(bottom=0)
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    ax.set_title("Backtest median MASE (lower is better)")
    return _save(fig, out / "forecast_accuracy.png")


def segments(data: ReportData, out: Path) -> Path | None:
    if data.segments is None or data.segments.empty:
        return None
    df = data.segments
    x = range(len(df))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    ax.bar([i - 0.2 for i in x], df["share"] * 100, width=0.4, label="% of customers",
           color=COLORS[0])  # fmt: skip
    ax.bar([i + 0.2 for i in x], df["revenue_share"] * 100, width=0.4, label="% of revenue",
           color=COLORS[2])  # fmt: skip
    ax.set_xticks(list(x), df["segment_label"], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, float(df[["share", "revenue_share"]].max().max()) * 115)
    ax.set_ylabel("%")
    ax.set_title("Share of customers and of revenue per segment")
    # legend above the plot, never over a bar
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, out / "segments.png")


def recommendations(data: ReportData, out: Path) -> Path | None:
    frame = data.rec_metrics
    if frame is None or frame.empty or "all" not in frame:
        return None
    fig, ax = plt.subplots(figsize=(8, 3))
    labels = [f"{m}{' (served)' if s else ''}" for m, s in zip(frame["model"], frame["served"],
              strict=True)]  # fmt: skip
    colors = [COLORS[1] if s else COLORS[0] for s in frame["served"]]
    ax.barh(labels, frame["all"] * 100, color=colors)
    ax.invert_yaxis()
    ax.set_xlim(left=0)
    ax.set_xlabel("% of listed products bought (holdout precision)")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("Recommendation lists: share bought, by method")
    return _save(fig, out / "recommendations.png")


ALL = (weekly_revenue, history_and_forecast, forecast_accuracy, segments, recommendations)
