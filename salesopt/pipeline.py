"""`refresh`: runs the stages for one business date and records every stage in `ops/runs`.

Stages run in a fixed order; `stages=` selects a subset (their order is kept). Each stage is a
module with `run(ctx) -> StageResult`. A failing stage is recorded as `failed` with its message
and stops the run: nothing after it is written.
"""

from __future__ import annotations

import importlib
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timezone

from pyspark.sql import SparkSession

from salesopt.config import Settings
from salesopt.context import StageContext, StageResult
from salesopt.errors import ConfigError, SalesoptError
from salesopt.io.tables import Warehouse
from salesopt.lock import warehouse_lock
from salesopt.summary import RunSummary, StageReport

log = logging.getLogger(__name__)

STAGES: dict[str, str] = {
    "ingest": "salesopt.ingest",
    "silver": "salesopt.silver",
    "gold": "salesopt.gold",
    "segment": "salesopt.segment",
    "recommend": "salesopt.recommend.stage",
    "forecast": "salesopt.forecast.stage",
    "optimize": "salesopt.optimize.stage",
    "monitor": "salesopt.monitor",
}
# The warehouse refresh proper (landing -> bronze -> silver -> gold): `--stages ingest,silver,gold`.
WAREHOUSE_STAGES: tuple[str, ...] = ("ingest", "silver", "gold")
RUNS_TABLE = ("ops", "runs")
_RUN_SCHEMA = (
    "run_id string, as_of date, stage string, status string, started_at timestamp, "
    "ended_at timestamp, seconds double, rows_in long, rows_out map<string,long>, "
    "tables map<string,long>, message string"
)


def parse_stages(text: str | None) -> list[str]:
    """`a,b` -> [a, b] in pipeline order; unknown names fail with the list of known ones."""
    if not text:
        return list(STAGES)
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; known stages: {', '.join(STAGES)}")
    return [s for s in STAGES if s in wanted]


def new_run_id(as_of: date) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{as_of.isoformat()}_{stamp}_{uuid.uuid4().hex[:6]}"


def _record(ctx: StageContext, report: StageReport, started: datetime) -> None:
    ended = datetime.now(timezone.utc).replace(tzinfo=None)
    row = (
        ctx.run_id,
        ctx.as_of,
        report.stage,
        report.status,
        started,
        ended,
        report.seconds,
        report.rows_in,
        {k: int(v) for k, v in report.rows_out.items()},
        {k: int(v) for k, v in report.tables.items() if v is not None},
        report.message,
    )
    ctx.warehouse.append(ctx.spark.createDataFrame([row], _RUN_SCHEMA), *RUNS_TABLE)


def run_stage(ctx: StageContext, name: str) -> StageReport:
    """Runs one stage, timing it and recording it in ops/runs whatever the outcome."""
    module = importlib.import_module(STAGES[name])
    started = datetime.now(timezone.utc).replace(tzinfo=None)
    t0 = time.perf_counter()
    log.info("stage %s: started (as_of=%s, run_id=%s)", name, ctx.as_of, ctx.run_id)
    try:
        result: StageResult = module.run(ctx)
    except Exception as exc:
        message = str(exc).split("\n")[0][:500]
        report = StageReport(name, "failed", round(time.perf_counter() - t0, 2), message=message)
        _record(ctx, report, started)
        log.error("stage %s: failed after %.1fs: %s", name, report.seconds, message)
        raise
    report = StageReport(
        stage=name,
        status="succeeded",
        seconds=round(time.perf_counter() - t0, 2),
        rows_in=result.rows_in,
        rows_out=result.rows_out,
        tables=result.tables,
        summary=result.summary,
    )
    _record(ctx, report, started)
    log.info("stage %s: done in %.1fs", name, report.seconds)
    return report


def refresh(
    spark: SparkSession,
    settings: Settings,
    as_of: date,
    stages: Sequence[str] | None = None,
    run_id: str | None = None,
) -> RunSummary:
    """Refreshes the warehouse for `as_of`; holds the warehouse lock for the whole run."""
    selected = list(stages) if stages else list(STAGES)
    warehouse = Warehouse.from_settings(settings)
    ctx = StageContext(spark, settings, warehouse, as_of, run_id or new_run_id(as_of))
    t0 = time.perf_counter()
    reports: list[StageReport] = []
    with warehouse_lock(settings, ctx.run_id, spark) as held:
        for name in selected:
            held.check()  # a run whose lock was taken over writes nothing more
            try:
                reports.append(run_stage(ctx, name))
            except SalesoptError:
                raise
            except Exception as exc:
                raise SalesoptError(
                    f"stage {name} failed: {str(exc).splitlines()[0][:300]}"
                ) from exc
    return RunSummary(
        ctx.run_id, as_of.isoformat(), "succeeded", round(time.perf_counter() - t0, 2), reports
    )
