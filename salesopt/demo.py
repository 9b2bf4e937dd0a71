"""`salesopt demo`: sample data -> full refresh on the embedded default -> printed summary.

Everything lives under one folder (default `data/demo`): `landing/` and `truth/` from the
generator, `warehouse/` with the Delta tables. Data is generated once per generator settings
(a `_generated.json` marker records them); a rerun reuses it and the refresh is idempotent.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salesopt.config import Settings
from salesopt.summary import RunSummary

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
MARKER = "_generated.json"


def _prepare_synthetic(spark: Any, settings: Settings, out: Path) -> int | None:
    """Generates the demo data unless the same generator settings already did; returns the
    number of landing lines generated (None when an older marker did not record it)."""
    from salesopt.datagen import generate

    wanted = json.loads(settings.generate.model_dump_json())
    marker = out / "landing" / MARKER
    if marker.exists():
        recorded = json.loads(marker.read_text())
        if recorded.get("settings", recorded) == wanted:
            log.info("reusing generated demo data in %s", out)
            lines = recorded.get("landing_lines")
            return int(lines) if lines is not None else None
    shutil.rmtree(out / "warehouse", ignore_errors=True)
    summary = generate(spark, str(out), settings.generate)
    marker.write_text(json.dumps({"settings": wanted, "landing_lines": summary.landing_lines}))
    return summary.landing_lines


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _input_lines(summary: RunSummary, generated: int | None) -> list[str]:
    silver = summary.stage("silver")
    ingest = summary.stage("ingest")
    if silver is None or "reconciliation" not in silver.summary:
        return []
    r = silver.summary["reconciliation"]
    lines = ["Input"]
    read = r["raw_lines_read"]
    later = (ingest.summary.get("files_delivered_later", 0) if ingest else 0) or 0
    if read == 0:
        lines.append("  no new landing lines since the last refresh: the warehouse holds them")
    elif generated is not None and generated != read:
        reason = (
            f"are in {later} file(s) delivered after {summary.as_of}"
            if later
            else "were read by an earlier refresh"
        )
        lines.append(
            f"  {_n(generated)} lines generated, {_n(read)} read: the other "
            f"{_n(generated - read)} {reason}"
        )
    elif later:
        lines.append(f"  {later} landing file(s) delivered after {summary.as_of} wait for later.")
    balanced = "balanced" if r["balanced"] else "NOT BALANCED"
    lines.append(
        f"  {_n(read)} lines read = {_n(r['accepted'])} accepted + {_n(r['quarantined'])} "
        f"quarantined + {_n(r['superseded_duplicates'])} superseded duplicates ({balanced})"
    )
    reasons = sorted(silver.summary.get("quarantine_reasons", {}).items(), key=lambda kv: -kv[1])
    if reasons:
        text = ", ".join(f"{k.replace('_', ' ')} {_n(v)}" for k, v in reasons[:3])
        more = f" and {len(reasons) - 3} more reasons" if len(reasons) > 3 else ""
        lines.append(f"  quarantined by reason: {text}{more}")
    return lines


def _segment_lines(s: dict[str, Any]) -> list[str]:
    segments = sorted(s.get("segments", []), key=lambda x: -x["revenue_share"])
    customers = sum(x["size"] for x in segments)
    lines = [f"Customers: {_n(customers)} in {len(segments)} segments (k={s['k']} modelled)"]
    for x in segments[:6]:
        lines.append(
            f"  {x['label']:<32} {_pct(x['share']):>4} of customers, "
            f"{_pct(x['revenue_share']):>4} of revenue"
        )
    if len(segments) > 6:
        lines.append(f"  ... {len(segments) - 6} more segments in the report")
    churn = s.get("churn_risk")
    if churn:
        lines.append(
            f"  at risk or lapsed: {_n(churn['customers'])} customers ({_pct(churn['share'])}), "
            f"{_n(churn['yearly_revenue'])} a year of revenue at stake"
        )
    if s.get("k_at_edge"):
        lines.append(f"  note: {s['k_at_edge']}")
    return lines


def _recommend_lines(s: dict[str, Any]) -> list[str]:
    method, k = s.get("served_method"), s.get("k")
    if method is None:
        return []
    line = f"  served list: {method}, precision@{k} {s.get('served_precision_at_k', 0):.3f}"
    baseline = s.get("best_baseline")
    if baseline and s.get("served_vs_best_baseline") is not None:
        line += (
            f" vs {baseline} {s.get('best_baseline_precision_at_k', 0):.3f} "
            f"({s['served_vs_best_baseline']:.2f}x), {_n(s.get('evaluated_customers', 0))} "
            "customers in the holdout"
        )
    return ["Recommendations", line]


def _forecast_lines(s: dict[str, Any]) -> list[str]:
    if "products" not in s:
        return []
    status = ", ".join(f"{k} {_n(v)}" for k, v in sorted(s.get("status_counts", {}).items()))
    lines = ["Forecasts", f"  {_n(s['products'])} products: {status}"]
    model, naive = s.get("backtest_mase_model"), s.get("backtest_mase_seasonal_naive")
    if model is not None and naive is not None:
        lines.append(
            f"  backtest {s.get('backtest_horizon')} weeks ahead: MASE {model:.2f} "
            f"vs seasonal naive {naive:.2f} (lower is better)"
        )
    return lines


def _strategy_line(strategy: dict[str, Any]) -> list[str]:
    if "actions_recommended" not in strategy:
        return []
    kinds = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in strategy.get("actions", {}).items())
    return [
        f"  segments: {_n(strategy['actions_recommended'])} actions recommended"
        + (f" ({kinds})" if kinds else "")
        + f" over {_n(strategy.get('segments', 0))} segments"
    ]


def _decision_lines(
    optimize: dict[str, Any], monitor: dict[str, Any], strategy: dict[str, Any] | None = None
) -> list[str]:
    lines = ["Decisions"]
    if "total_suggested_order_units" in optimize:
        lines.append(f"  replenishment: order {_n(optimize['total_suggested_order_units'])} units")
    if "price_changes_suggested" in optimize:
        lines.append(
            f"  prices: {_n(optimize['price_changes_suggested'])} changes suggested "
            f"({_n(optimize.get('products_elasticity_ok', 0))} products with a usable elasticity)"
        )
    if "anomalies" in monitor:
        found = sum(int(v) for v in monitor["anomalies"].values())
        lines.append(f"  anomalies: {found} flagged")
    lines += _strategy_line(strategy or {})
    return lines if len(lines) > 1 else []


def _wrapped(head: str, items: list[str], width: int = 110) -> list[str]:
    """`head` and the items joined by ", ", wrapped between items (never inside one)."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + len(piece) + 1 > width and line.strip() != head.strip():
            lines.append(line.rstrip())
            line = "    "
        line += piece + " "
    return [*lines, line.rstrip()]


def format_summary(
    summary: RunSummary, warehouse: str, report: Path | None = None, generated: int | None = None
) -> str:
    """The human summary at the end of a demo run: what ran, what it found, where to look
    (at most about 40 lines; the JSON line that follows has everything)."""
    lines = [
        f"salesopt demo, as of {summary.as_of}: {summary.status} in {_duration(summary.seconds)}",
        *_wrapped("  stages: ", [f"{s.stage} {s.seconds:.0f}s" for s in summary.stages]),
        *_input_lines(summary, generated),
    ]
    by_name = {s.stage: s.summary for s in summary.stages}
    if "segment" in by_name:
        lines += _segment_lines(by_name["segment"])
    lines += _recommend_lines(by_name.get("recommend", {}))
    lines += _forecast_lines(by_name.get("forecast", {}))
    lines += _decision_lines(
        by_name.get("optimize", {}), by_name.get("monitor", {}), by_name.get("strategy", {})
    )
    lines.append("Where to look")
    if report is not None:
        lines.append(f"  report: {report}")
    lines.append(f"  tables: {warehouse}/<layer>/<name> (columns: docs/tables.md)")
    lines.append(f"  run log: {warehouse}/ops/runs (run_id {summary.run_id})")
    return "\n".join(lines)


def demo_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Demo mode (which permits the fixed demo PII key) and the demo folder's warehouse and
    landing, unless `--warehouse` / `--landing` name others."""
    out = Path(args.out).resolve()
    extra: dict[str, Any] = {"demo": True}
    if not args.warehouse:
        extra["paths.warehouse"] = str(out / "warehouse")
    if not args.landing:
        extra["paths.landing"] = str(out / "landing")
    return extra


def run_demo(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> RunSummary:
    """Runs the demo end to end and prints a readable summary; returns the run summary (the
    caller prints it as the JSON line)."""
    from salesopt import tracking
    from salesopt.datagen import last_day
    from salesopt.io.tables import Warehouse
    from salesopt.pipeline import refresh
    from salesopt.report import build_report

    out = Path(args.out).resolve()
    generated: int | None = None
    if args.dataset == "completejourney":
        from salesopt.datasets import prepare_completejourney

        as_of = prepare_completejourney(spark, Path(settings.paths.landing))
    else:
        generated = _prepare_synthetic(spark, settings, out)
        as_of = last_day(settings.generate)
    as_of = args.as_of or as_of
    summary = refresh(spark, settings, as_of)
    report = build_report(
        spark, Warehouse.from_settings(settings), as_of, out / "report",
        settings.monitor.interval_level,
    )  # fmt: skip
    tracking.log_report(settings, as_of, report)
    sys.stdout.write(format_summary(summary, settings.paths.warehouse, report, generated) + "\n")
    return summary
