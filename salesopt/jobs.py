"""Shared wiring of the batch jobs (`jobs/*.py`, the `salesopt-job` entry point, wheel tasks).

A job is a named slice of the pipeline (`JOB_STAGES`). Every job takes the same flags, loads the
settings once, gets the session from `get_spark` (which respects `spark-submit` and reuses a
platform session), runs `pipeline.refresh` for its stages, and writes the run summary as one
JSON object on the last line of stdout. Progress goes to stderr through `logging`.

Exit codes, for schedulers: 0 success; 1 the run failed (a stage failed, the warehouse is locked
by another refresh, input missing: one line on stderr says why); 2 bad usage or configuration
(mistyped flag, unknown setting, a stage not available in this build).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import SparkSession

import salesopt
from salesopt.cli import configure_logging, iso_date, settings_from
from salesopt.config import Settings
from salesopt.errors import ConfigError, SalesoptError
from salesopt.pipeline import parse_stages, refresh
from salesopt.summary import RunSummary, emit_summary

log = logging.getLogger(__name__)

# job name -> pipeline stages it runs (None: every registered stage, in pipeline order)
JOB_STAGES: dict[str, tuple[str, ...] | None] = {
    "refresh": None,
    "ingest": ("ingest", "silver"),
    "features": ("gold",),
    "segment": ("segment",),
    "recommend": ("recommend",),
    "forecast": ("forecast",),
    "optimize": ("optimize", "monitor"),
}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser(job: str) -> argparse.ArgumentParser:
    """The flags every job takes; `refresh` also takes `--stages`."""
    if job not in JOB_STAGES:
        raise ConfigError(f"unknown job {job!r}; known jobs: {', '.join(JOB_STAGES)}")
    stages = JOB_STAGES[job]
    what = "every stage" if stages is None else "stage(s) " + ", ".join(stages)
    p = argparse.ArgumentParser(
        prog=f"salesopt-job {job}",
        description=f"salesopt {job} job: runs {what} for one business date",
        allow_abbrev=False,
    )
    p.add_argument(
        "--conf", type=Path, default=None, help="environment file (default conf/local.yaml)"
    )
    p.add_argument("--as-of", type=iso_date, required=True, help="business date YYYY-MM-DD")
    p.add_argument("--warehouse", help="warehouse root (overrides paths.warehouse)")
    p.add_argument("--landing", help="landing root (overrides paths.landing)")
    p.add_argument(
        "--set", action="append", metavar="SECTION.KEY=VALUE", help="override any setting"
    )
    p.add_argument("--run-id", help="run id to record (default: generated from as_of and time)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    if stages is None:
        p.add_argument("--stages", help="comma-separated subset of stages (default: all)")
    p.set_defaults(job=job)
    return p


def parse_args(argv: Sequence[str] | None, job: str) -> argparse.Namespace:
    """Parses a job's arguments strictly: a mistyped flag exits with code 2."""
    return build_parser(job).parse_args(argv)


def stages_for(args: argparse.Namespace) -> list[str]:
    """The pipeline stages the job runs; a stage missing from this build is a ConfigError."""
    fixed = JOB_STAGES[args.job]
    return parse_stages(getattr(args, "stages", None) if fixed is None else ",".join(fixed))


def load_job_settings(args: argparse.Namespace) -> Settings:
    return settings_from(args)


def run(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> RunSummary:
    """Runs the job's stages for `args.as_of` and returns the run summary."""
    stages = stages_for(args)
    log.info("job %s: stages %s for as_of %s", args.job, ",".join(stages), args.as_of)
    return refresh(spark, settings, args.as_of, stages, run_id=args.run_id)


def execute(job: str, argv: Sequence[str] | None = None) -> int:
    """Parse, configure, run, report: the error boundary shared by every job."""
    from salesopt.session import get_spark

    try:
        args = parse_args(argv, job)
    except SystemExit as exc:  # argparse already printed the usage error
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    configure_logging(args.verbose)
    log.info("salesopt %s loaded from %s", salesopt.__version__, Path(salesopt.__file__).parent)
    try:
        settings = load_job_settings(args)
        stages_for(args)  # fail on configuration before a session is started
        spark = get_spark(settings.spark)
        summary = run(spark, settings, args)
    except ConfigError as exc:
        sys.stderr.write(f"salesopt: configuration error: {exc}\n")
        return EXIT_USAGE
    except SalesoptError as exc:
        sys.stderr.write(f"salesopt: {exc}\n")
        return EXIT_FAILED
    emit_summary(summary.to_dict())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """`salesopt-job <job> [flags]`: the console entry point used by wheel tasks."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in JOB_STAGES:
        sys.stderr.write(f"usage: salesopt-job {{{','.join(JOB_STAGES)}}} --as-of YYYY-MM-DD ...\n")
        return EXIT_USAGE
    return execute(args[0], args[1:])


if __name__ == "__main__":
    sys.exit(main())
