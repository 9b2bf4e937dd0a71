"""`salesopt` command line: refresh, generate, report, maintain, rollback, demo, setup.

The one entry of every deployment: the console script, `spark-submit jobs/main.py`, Databricks
wheel tasks and the Airflow example all call `main`, which parses the arguments, configures
logging, loads the settings, starts or reuses the Spark session, runs the command (`run`) and
prints its summary. Progress goes to stderr through `logging`; the last line of stdout is one
JSON object that a scheduler can parse. Exit codes: 0 success; 1 a salesopt error (a stage
failed, another run holds the local warehouse guard, input missing: one line on stderr says
why);
2 bad usage or configuration (mistyped flag, unknown setting, a stage not available in this
build), reported before a Spark session starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import salesopt
from salesopt.config import Settings, load_settings, parse_iso_date, parse_set_flags
from salesopt.errors import ConfigError, SalesoptError
from salesopt.summary import RunSummary, emit_summary

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("salesopt")
DEFAULT_CONF = Path("conf/local.yaml")
# commands that read or write a warehouse: outside a checkout they need it named
WAREHOUSE_COMMANDS = ("refresh", "report", "maintain", "rollback")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def iso_date(text: str) -> date:
    """A date flag's value: exactly YYYY-MM-DD (`salesopt.config.parse_iso_date`)."""
    try:
        return parse_iso_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


YESTERDAY = "yesterday"


def as_of_date(text: str) -> date | str:
    """`--as-of`: YYYY-MM-DD, or `yesterday` (the day before `--trigger-date`)."""
    return YESTERDAY if text == YESTERDAY else iso_date(text)


def resolve_as_of(args: argparse.Namespace) -> None:
    """Turns `--as-of yesterday` into the day before `--trigger-date` (default: today in UTC):
    the last complete day, what a daily schedule refreshes."""
    if getattr(args, "as_of", None) != YESTERDAY:
        return
    trigger = args.trigger_date or datetime.now(timezone.utc).date()
    args.as_of = trigger - timedelta(days=1)


def _conf_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--conf", type=Path, default=None, help="environment file (default conf/local.yaml)"
    )
    p.add_argument("--warehouse", help="warehouse root (overrides paths.warehouse)")
    p.add_argument("--landing", help="landing root (overrides paths.landing)")
    p.add_argument(
        "--set", action="append", metavar="SECTION.KEY=VALUE", help="override any setting"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salesopt", description=__doc__.splitlines()[0], allow_abbrev=False
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    ref = sub.add_parser(
        "refresh", allow_abbrev=False, help="refresh the warehouse for one business date"
    )
    _conf_flags(ref)
    ref.add_argument(
        "--as-of", type=as_of_date, required=True,
        help="business date YYYY-MM-DD, or `yesterday`: the day before --trigger-date",
    )  # fmt: skip
    ref.add_argument(
        "--trigger-date", type=iso_date,
        help="the date a scheduler started the run, for --as-of yesterday (default: today, UTC)",
    )  # fmt: skip
    ref.add_argument("--stages", help="comma-separated subset of stages (default: all)")
    ref.add_argument("--run-id", help="run id to record (default: generated from as_of and time)")

    gen = sub.add_parser(
        "generate", allow_abbrev=False, help="write synthetic landing files with planted truth"
    )
    _conf_flags(gen)
    gen.add_argument("--out", required=True, help="output folder (landing/ and truth/ below it)")
    gen.add_argument("--customers", type=int)
    gen.add_argument("--products", type=int)
    gen.add_argument("--days", type=int)
    gen.add_argument("--start-date", type=iso_date)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--dirty-rate", type=float)

    rep = sub.add_parser("report", allow_abbrev=False, help="write the HTML report for one as_of")
    _conf_flags(rep)
    rep.add_argument("--as-of", type=iso_date, required=True, help="business date YYYY-MM-DD")
    rep.add_argument(
        "--out", required=True, type=Path, help="output folder for report.html + charts"
    )

    maint = sub.add_parser(
        "maintain", allow_abbrev=False, help="OPTIMIZE and VACUUM every warehouse table"
    )
    _conf_flags(maint)
    maint.add_argument("--no-vacuum", action="store_true")

    back = sub.add_parser(
        "rollback", allow_abbrev=False,
        help="restore every table a run wrote to its version before the run (Delta RESTORE)",
    )  # fmt: skip
    _conf_flags(back)
    which = back.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="the run to undo (ops/runs.run_id)")
    which.add_argument("--as-of", type=iso_date, help="undo the latest run of this business date")
    back.add_argument(
        "--force", action="store_true",
        help="restore even when a later run changed the same tables (its changes are undone too)",
    )  # fmt: skip

    setup = sub.add_parser(
        "setup", allow_abbrev=False,
        help="download the pinned Delta Lake jars for the embedded session (once, no Spark)",
    )  # fmt: skip
    setup.add_argument(
        "--dest", type=Path, default=None,
        help="folder for the jars (default: the user cache, where sessions look for them)",
    )  # fmt: skip

    demo = sub.add_parser(
        "demo", allow_abbrev=False, help="generate sample data, refresh, print a summary"
    )
    _conf_flags(demo)
    demo.add_argument("--out", default="data/demo", help="demo folder (landing, truth, warehouse)")
    demo.add_argument("--as-of", type=iso_date, help="default: last generated day")
    demo.add_argument("--dataset", choices=("synthetic", "completejourney"), default="synthetic")

    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses a command line strictly: a mistyped flag or a bad date exits with code 2.
    `--as-of yesterday` is resolved to a date here (`resolve_as_of`)."""
    args = build_parser().parse_args(argv)
    resolve_as_of(args)
    return args


def _generate_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = ("customers", "products", "days", "start_date", "seed", "dirty_rate")
    return {f"generate.{n}": getattr(args, n) for n in names if getattr(args, n) is not None}


def settings_from(args: argparse.Namespace) -> Settings:
    """The command's settings: `--conf` (default conf/local.yaml when present), then `--set`,
    `--warehouse`, `--landing`, and the command's own flags (generator sizes, demo folders)."""
    overrides = parse_set_flags(args.set)
    if args.warehouse:
        overrides["paths.warehouse"] = args.warehouse
    if args.landing:
        overrides["paths.landing"] = args.landing
    if args.command == "generate":
        overrides.update(_generate_overrides(args))
    elif args.command == "demo":
        from salesopt.demo import demo_overrides

        overrides.update(demo_overrides(args))
    conf = args.conf if args.conf is not None else (DEFAULT_CONF if DEFAULT_CONF.exists() else None)
    if (
        conf is None
        and args.command in WAREHOUSE_COMMANDS
        and "paths.warehouse" not in overrides
        and not os.environ.get("SALESOPT_PATHS__WAREHOUSE")
    ):
        raise ConfigError(
            f"no --conf and no {DEFAULT_CONF} under {Path.cwd()} (not a salesopt checkout), so "
            f"the built-in default would use ./warehouse here; pass --warehouse PATH (and "
            "--landing PATH for a refresh) or --conf FILE"
        )
    return load_settings(conf, overrides=overrides)


def check(args: argparse.Namespace, settings: Settings) -> None:
    """What can be checked before Spark starts: an unknown stage (ConfigError), and for a
    refresh the warehouse path, the landing folder and the PII key (`pipeline.preflight`)."""
    if args.command == "refresh":
        from salesopt.pipeline import parse_stages, preflight

        preflight(settings, parse_stages(args.stages))


def session(settings: Settings) -> SparkSession:
    """The session every command runs on (`salesopt.session.get_spark`: the active one, the
    platform's on Databricks, a Connect server's, the launcher's, else the embedded one).

    On Databricks the command owns its process, so a Connect session (serverless) is closed
    before it exits, even one the PII secret's read made active first."""
    from salesopt.session import get_spark, own_session

    spark = get_spark(settings.spark, settings.paths.checkpoint_dir)
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        own_session(spark)
    return spark


def _refresh(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> RunSummary:
    from salesopt.pipeline import parse_stages, refresh

    stages = parse_stages(args.stages)
    log.info("refresh: stages %s for as_of %s", ",".join(stages), args.as_of)
    return refresh(spark, settings, args.as_of, stages, run_id=args.run_id)


def _generate(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from salesopt.datagen import generate

    return generate(spark, args.out, settings.generate).to_dict()


def _report(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from salesopt import tracking
    from salesopt.io.tables import Warehouse
    from salesopt.report import build_report

    path = build_report(
        spark, Warehouse.from_settings(settings), args.as_of, args.out,
        settings.monitor.interval_level,
    )  # fmt: skip
    tracked = tracking.log_report(settings, args.as_of, path)
    return {"report": str(path.resolve()), "mlflow_run_id": tracked}


def _maintain(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from salesopt.maintain import maintain

    return maintain(spark, settings, vacuum=not args.no_vacuum)


def _rollback(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from salesopt.rollback import rollback

    return rollback(spark, settings, run_id=args.run_id, as_of=args.as_of, force=args.force)


def _demo(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> RunSummary:
    from salesopt.demo import run_demo

    return run_demo(spark, settings, args)


COMMANDS: dict[str, Callable[[SparkSession, Settings, argparse.Namespace], Any]] = {
    "refresh": _refresh,
    "generate": _generate,
    "report": _report,
    "maintain": _maintain,
    "rollback": _rollback,
    "demo": _demo,
}


def run(
    spark: SparkSession, settings: Settings, args: argparse.Namespace
) -> RunSummary | dict[str, Any]:
    """Runs the parsed command on `spark`: `refresh` and `demo` return the RunSummary, the other
    commands the dict their summary line prints."""
    return COMMANDS[args.command](spark, settings, args)


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "matplotlib", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, configure logging, load settings, start the session, run, print the summary."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage error (or the help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    configure_logging(args.verbose)
    log.info("salesopt %s loaded from %s", salesopt.__version__, Path(salesopt.__file__).parent)
    try:
        if args.command == "setup":  # needs no settings and no Spark
            from salesopt.jars import fetch_delta_jars

            emit_summary(fetch_delta_jars(args.dest))
            return EXIT_OK
        settings = settings_from(args)
        check(args, settings)
        from salesopt.session import close_remote

        spark = session(settings)
        try:
            result = run(spark, settings, args)
        finally:
            close_remote(spark)
    except ConfigError as exc:
        sys.stderr.write(f"salesopt: configuration error: {exc}\n")
        return EXIT_USAGE
    except SalesoptError as exc:
        sys.stderr.write(f"salesopt: {exc}\n")
        return EXIT_FAILED
    except Exception as exc:  # not a known cause: one line here, the traceback in the debug log
        log.debug("unexpected error", exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        sys.stderr.write(
            f"salesopt: unexpected {type(exc).__name__}: {first} (run with -v for the "
            "traceback; please report it if the input looks right)\n"
        )
        return EXIT_FAILED
    emit_summary(result.to_dict() if isinstance(result, RunSummary) else result)
    return EXIT_OK


def entry() -> None:
    """The `salesopt` console script: exits with `main`'s code.

    A failure raises SystemExit with code 1 or 2, so a scheduler that calls the entry point
    in-process (a Databricks wheel task) marks the task failed, not only a shell that checks the
    exit status.
    """
    code = main()
    if code:
        sys.exit(code)


if __name__ == "__main__":
    sys.exit(main())
