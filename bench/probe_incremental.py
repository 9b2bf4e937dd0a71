"""Probe: where an incremental refresh spends its time, stage by stage and step by step.

Not a registered bench (no result file): a measurement aid for the incremental refresh. It uses
the landing of a `bench.bench_refresh` run (`--workdir`):

    SALESOPT_JARS_DIR=.jars .venv/bin/python -m bench.probe_incremental --workdir /tmp/b10m

1. If `<workdir>/warehouse_full` does not exist, builds it as `bench.bench_refresh` does (a
   full refresh for last day - `--hold-days` - 1, then the refresh for last day -
   `--hold-days`), once; later calls reuse it.
2. Each of `--runs` runs copies `warehouse_full` to `<workdir>/warehouse_probe` and runs the
   incremental refresh for the last day on the copy, so every run starts from the same state.
   Run 1 starts in a fresh JVM; later runs show the warm cost. Each run starts with the
   session's cache of compiled code emptied (`bench.common.clear_codegen_cache`), so a later
   run does not reuse the code of the identical run before it: the bench's
   `incremental_compiled_afresh_seconds` is the comparable figure (`bench.probe_next_day`
   shows what a next day's run in the same session reuses).
   `--spark-conf key=value` adds session settings and `--table-property key=value` sets a
   table property on every table of the copy (A/B of a Spark or Delta setting).
3. Prints each stage's seconds and, for the traced steps (`--trace module:function`, default
   below), the seconds, Spark jobs and call site of every call (nested traced steps count in
   both), then the run's Spark jobs grouped by description with their summed seconds (from the
   Spark UI's REST API; `--jobs-top 0` or a session without UI skips it), after a line
   splitting the run's wall time into seconds with at least one Spark job running and seconds
   with none (driver work: planning, Delta log reads and commits, Python). Jobs run
   concurrently (the broadcasts of one query), so a group's summed job seconds can exceed its
   step's wall time. Each run also prints its local clock times: with `--jfr FILE.jfr` (the
   driver JVM recorded by Java Flight Recorder), `python -m bench.jfr_report FILE.jfr --from
   HH:MM:SS --to HH:MM:SS` summarises one run's CPU samples, process starts and GC pauses.
   Each run also prints the driver JVM's CPU seconds and the JIT compiler's, GC's and code
   sweeper's shares of them (`bench.jvm_cpu`, from /proc: the recording's samples leave those
   threads out).
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import shutil
import sys
import textwrap
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import jvm_cpu
from bench.common import Timer, clear_codegen_cache, probe_parser, probe_settings
from salesopt.datagen import last_day
from salesopt.pipeline import WAREHOUSE_STAGES as CORE
from salesopt.pipeline import refresh
from salesopt.session import get_spark

TRACED = (
    "salesopt.ingest:plan_batch",
    "salesopt.ingest:_log_batch",
    "salesopt.silver:classify",
    "salesopt.silver:_write_quarantine",
    "salesopt.silver:_merge_silver",
    "salesopt.silver:clean_batch",
    "salesopt.dims:refresh_dims",
    "salesopt.gold:_publish_sales",
    "salesopt.gold:silver_version_for",
    "salesopt.gold:_write_history",
    "salesopt.snapshots:slices",
    "salesopt.snapshots:_read_changes",
    "salesopt.snapshots:_change_inputs",
    "salesopt.snapshots:_change_slice",
    "salesopt.snapshots:resolve",
    "salesopt.snapshots:materialized",
    "salesopt.snapshots:write_all",
    "salesopt.quality:evaluate",
    "salesopt.quality:record",
    "salesopt.pipeline:_record",
)


def _trace(
    targets: Sequence[str], jobs: Callable[[], int], sc: Any
) -> dict[str, list[tuple[float, int, str]]]:
    """Wraps each `module:function` so every call records (seconds, Spark jobs started, caller).

    The caller is `file:line` of the call site, which tells apart the calls of a helper used in
    many places (`materialized`).

    The call also names its Spark jobs (job description = the innermost traced step), so the
    job groups below say which step ran them; Delta names its own internal jobs.
    """
    calls: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for target in targets:
        module_name, name = target.split(":")
        module = importlib.import_module(module_name)
        original = getattr(module, name)

        @functools.wraps(original)
        def traced(*a: Any, _f: Callable = original, _k: str = target, **kw: Any) -> Any:
            start, before = time.perf_counter(), jobs()
            frame = sys._getframe(1)
            caller = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
            outer = sc.getLocalProperty("spark.job.description")
            sc.setJobDescription(_k)
            try:
                return _f(*a, **kw)
            finally:
                sc.setJobDescription(outer)
                calls[_k].append((time.perf_counter() - start, jobs() - before, caller))

        setattr(module, name, traced)
    return calls


def _stamp(stamp: str) -> float:
    """Seconds of a UI REST time stamp (`2026-11-30T23:25:16.900GMT`), on a consistent scale."""
    return time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + int(stamp[20:23]) / 1e3


def _seconds(start: str, end: str) -> float:
    return _stamp(end) - _stamp(start)


def _busy_seconds(jobs: list[dict[str, Any]]) -> float:
    """Seconds during which at least one of `jobs` was running (overlapping jobs count once)."""
    spans = sorted((_stamp(j["submissionTime"]), _stamp(j["completionTime"])) for j in jobs)
    busy, start, end = 0.0, None, None
    for s, e in spans:
        if end is None or s > end:
            if start is not None and end is not None:
                busy += end - start
            start, end = s, e
        else:
            end = max(end, e)
    if start is not None and end is not None:
        busy += end - start
    return busy


def _job_groups(ui: str | None, first: int, last: int, top: int) -> tuple[float, list[str]]:
    """Spark jobs `first`..`last` from the UI's REST API: busy seconds and groups.

    Busy seconds have at least one of the jobs running (`_busy_seconds`); the groups are the
    jobs by description (summed seconds, count).
    """
    if not ui or top <= 0:
        return 0.0, []
    with urllib.request.urlopen(f"{ui}/api/v1/applications") as r:
        app = json.load(r)[0]["id"]
    with urllib.request.urlopen(f"{ui}/api/v1/applications/{app}/jobs") as r:
        jobs = [j for j in json.load(r) if first <= j["jobId"] < last and "completionTime" in j]
    groups: dict[str, list[float]] = defaultdict(list)
    for job in jobs:
        name = re.sub(r"\d+", "N", job.get("description") or job["name"])[:110]
        groups[name].append(_seconds(job["submissionTime"], job["completionTime"]))
    ranked = sorted(groups.items(), key=lambda kv: -sum(kv[1]))[:top]
    return _busy_seconds(jobs), [f"{sum(v):6.1f} s {len(v):4d} jobs  {k}" for k, v in ranked]


def main(argv: Sequence[str] | None = None) -> None:
    p = probe_parser(__doc__.splitlines()[0])
    p.add_argument("--hold-days", type=int, default=5)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--trace", action="append", default=None, help="module:function (repeatable)")
    p.add_argument("--jobs-top", type=int, default=25, help="job groups to list (UI needed)")
    p.add_argument(
        "--table-property", action="append", default=[],
        help="key=value set on every table of the copy before the run (repeatable)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if not (args.workdir / "landing" / "orders").is_dir():
        raise SystemExit(f"{args.workdir}/landing/orders not found: run bench.bench_refresh first")
    full_wh, probe_wh = args.workdir / "warehouse_full", args.workdir / "warehouse_probe"
    settings = probe_settings(args)
    spark = get_spark(settings.spark)
    end = last_day(settings.generate)
    if not full_wh.is_dir():  # built as the bench builds it: a full refresh, then one day
        previous_day = end - timedelta(days=args.hold_days)
        full_as_of = previous_day - timedelta(days=1)
        build = settings.with_overrides(paths={"warehouse": str(full_wh)})
        print(f"building {full_wh}: full refresh for {full_as_of}, then {previous_day}")
        with Timer() as t:
            refresh(spark, build, full_as_of, CORE)
            refresh(spark, build, previous_day, CORE)
        print(f"built in {t.seconds:.1f} s")
    tracker = spark.sparkContext.statusTracker()

    def jobs_started() -> int:  # job ids are sequential; the retained-job list is capped
        return max(tracker.getJobIdsForGroup(None), default=-1) + 1

    calls = _trace(args.trace or TRACED, jobs_started, spark.sparkContext)
    probe = settings.with_overrides(paths={"warehouse": str(probe_wh)})
    pid = jvm_cpu.jvm_pid(spark)
    for run in range(1, args.runs + 1):
        shutil.rmtree(probe_wh, ignore_errors=True)
        shutil.copytree(full_wh, probe_wh)
        if args.table_property:
            props = ", ".join(
                f"'{k}' = '{v}'" for k, v in (kv.split("=", 1) for kv in args.table_property)
            )
            for log_dir in sorted(probe_wh.glob("*/*/_delta_log")):
                spark.sql(f"ALTER TABLE delta.`{log_dir.parent}` SET TBLPROPERTIES ({props})")
        calls.clear()
        clear_codegen_cache(spark)  # each run compiles its own code (bench.common)
        jobs_before = jobs_started()
        with jvm_cpu.Run(pid) as run_t:
            summary = refresh(spark, probe, end, CORE)
        jobs = jobs_started() - jobs_before
        stages = ", ".join(f"{s.stage} {s.seconds:.1f}" for s in summary.stages)
        print(f"\nrun {run}: incremental {run_t.seconds:.1f} s, {jobs} Spark jobs ({stages})")
        print(textwrap.indent(run_t.report(), "  "))
        for target, rows in calls.items():
            secs = ", ".join(f"{s:.1f} ({where})" for s, _, where in rows)
            print(f"  {target}: {sum(s for s, _, _ in rows):.1f} s, "
                  f"{sum(j for _, j, _ in rows)} jobs ({len(rows)} calls: {secs})")  # fmt: skip
        ui = spark.sparkContext.uiWebUrl
        busy, groups = _job_groups(ui, jobs_before, jobs_before + jobs, args.jobs_top)
        if groups:
            idle = run_t.seconds - busy
            print(f"  time: {busy:.1f} s with a Spark job running, {idle:.1f} s without one")
        for line in groups:
            print("  job group:", line)
    spark.stop()


if __name__ == "__main__":
    main()
