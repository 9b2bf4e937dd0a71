"""matplotlib charts for the report (PNG files, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from salesopt.report.data import ReportData

COLORS = ("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000")


def _save(fig: plt.Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def weekly_revenue(data: ReportData, out: Path) -> str | None:
    if data.weekly_total is None or data.weekly_total.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot(
        pd.to_datetime(data.weekly_total["week_start"]),
        data.weekly_total["revenue"],
        color=COLORS[0],
    )
    ax.set_title("Net revenue per week (all products)")
    ax.set_ylabel("revenue")
    ax.grid(alpha=0.3)
    return _save(fig, out / "weekly_revenue.png")


def history_and_forecast(data: ReportData, out: Path) -> str | None:
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
        ax.set_title(f"{product}: weekly units")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    return _save(fig, out / "forecasts.png")


def forecast_accuracy(data: ReportData, out: Path) -> str | None:
    if data.forecast_overall is None or data.forecast_overall.empty:
        return None
    df = data.forecast_overall.set_index("method")
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(df.index, df["mase"], color=[COLORS[i % len(COLORS)] for i in range(len(df))])
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_title("Backtest median MASE (lower is better)")
    return _save(fig, out / "forecast_accuracy.png")


def segments(data: ReportData, out: Path) -> str | None:
    if data.segments is None or data.segments.empty:
        return None
    df = data.segments
    x = range(len(df))
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar([i - 0.2 for i in x], df["share"], width=0.4, label="customers", color=COLORS[0])
    ax.bar([i + 0.2 for i in x], df["revenue_share"], width=0.4, label="revenue", color=COLORS[2])
    ax.set_xticks(list(x), df["segment_label"], rotation=15, fontsize=8)
    ax.set_title("Segment share of customers and of revenue")
    ax.legend(fontsize=8)
    return _save(fig, out / "segments.png")


def recommendations(data: ReportData, out: Path) -> str | None:
    if data.rec_metrics is None or data.rec_metrics.empty:
        return None
    df = data.rec_metrics[
        (data.rec_metrics["candidates"] == "all")
        & (data.rec_metrics["metric"] != "catalogue_coverage")
    ]
    if df.empty:
        return None
    table = df.pivot_table(index="metric", columns="model", values="value")
    fig, ax = plt.subplots(figsize=(8, 3))
    table.plot.bar(ax=ax, color=list(COLORS[: len(table.columns)]), rot=0)
    ax.set_title("Holdout ranking metrics (all products)")
    ax.legend(fontsize=8)
    return _save(fig, out / "recommendations.png")


ALL = (weekly_revenue, history_and_forecast, forecast_accuracy, segments, recommendations)
