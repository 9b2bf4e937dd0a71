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


def _prepare_synthetic(spark: Any, settings: Settings, out: Path) -> None:
    from salesopt.datagen import generate

    wanted = json.loads(settings.generate.model_dump_json())
    marker = out / "landing" / MARKER
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        log.info("reusing generated demo data in %s", out)
        return
    shutil.rmtree(out / "warehouse", ignore_errors=True)
    generate(spark, str(out), settings.generate)
    marker.write_text(json.dumps(wanted))


def format_summary(summary: RunSummary, warehouse: str) -> str:
    """Human-readable lines for the end of a demo run."""
    lines = [f"salesopt demo: run {summary.run_id} for as_of {summary.as_of}: {summary.status}"]
    silver = summary.stage("silver")
    if silver and "reconciliation" in silver.summary:
        r = silver.summary["reconciliation"]
        lines.append(
            f"  reconciliation: {r['raw_lines_read']} raw lines read = {r['accepted']} accepted"
            f" + {r['quarantined']} quarantined + {r['superseded_duplicates']} superseded"
            f" ({'balanced' if r['balanced'] else 'NOT BALANCED'})"
        )
        reasons = ", ".join(
            f"{k}={v}" for k, v in sorted(silver.summary["quarantine_reasons"].items())
        )
        lines.append(f"  quarantine reasons: {reasons or 'none'}")
    for stage in summary.stages:
        lines.append(f"  stage {stage.stage:<10} {stage.status:<10} {stage.seconds:>7.1f}s")
        for key, value in stage.summary.items():
            if key in ("reconciliation", "quarantine_reasons", "batches"):
                continue
            lines.append(f"      {key}: {json.dumps(value, default=str)}")
    lines.append(f"  tables under {warehouse}/<layer>/<name> (docs/tables.md)")
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
    from salesopt.datagen import last_day
    from salesopt.io.tables import Warehouse
    from salesopt.pipeline import refresh
    from salesopt.report import build_report

    out = Path(args.out).resolve()
    if args.dataset == "completejourney":
        from salesopt.datasets import prepare_completejourney

        as_of = prepare_completejourney(spark, Path(settings.paths.landing))
    else:
        _prepare_synthetic(spark, settings, out)
        as_of = last_day(settings.generate)
    as_of = args.as_of or as_of
    summary = refresh(spark, settings, as_of)
    report = build_report(spark, Warehouse.from_settings(settings), as_of, out / "report")
    sys.stdout.write(format_summary(summary, settings.paths.warehouse) + "\n")
    sys.stdout.write(f"  report: {report}\n")
    return summary
