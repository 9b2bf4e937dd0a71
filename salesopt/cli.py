"""`salesopt` command line: generate, refresh, demo, report, maintain, unlock, bench.

Progress goes to stderr through `logging`; the last line of stdout is one JSON object that a
scheduler can parse. Exit codes: 0 success, 1 a salesopt error (one line on stderr), 2 bad usage
or configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from salesopt.config import Settings, load_settings, parse_iso_date, parse_set_flags
from salesopt.errors import ConfigError, SalesoptError
from salesopt.summary import emit_summary

log = logging.getLogger("salesopt")
DEFAULT_CONF = Path("conf/local.yaml")


def iso_date(text: str) -> date:
    """A date flag's value: exactly YYYY-MM-DD (`salesopt.config.parse_iso_date`)."""
    try:
        return parse_iso_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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

    ref = sub.add_parser(
        "refresh", allow_abbrev=False, help="refresh the warehouse for one business date"
    )
    _conf_flags(ref)
    ref.add_argument("--as-of", type=iso_date, required=True, help="business date YYYY-MM-DD")
    ref.add_argument("--stages", help="comma-separated subset of stages (default: all)")

    demo = sub.add_parser(
        "demo", allow_abbrev=False, help="generate sample data, refresh, print a summary"
    )
    _conf_flags(demo)
    demo.add_argument("--out", default="data/demo", help="demo folder (landing, truth, warehouse)")
    demo.add_argument("--as-of", type=iso_date, help="default: last generated day")
    demo.add_argument("--dataset", choices=("synthetic", "completejourney"), default="synthetic")

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

    unl = sub.add_parser(
        "unlock",
        allow_abbrev=False,
        help="remove the warehouse lock left by a run that is known to be dead",
        description="Removes the warehouse lock (lock file or ops/refresh_lock row) when it is "
        "held by the run named with --run-id; a lock held by any other run is left alone.",
    )
    _conf_flags(unl)
    unl.add_argument("--run-id", required=True, help="the run the lock names (from its message)")

    bench = sub.add_parser(
        "bench",
        allow_abbrev=False,
        help="run benchmarks from a source checkout; results under bench/results/",
        description="Runs benchmarks from bench/ of a source checkout (bench/ is not part of the "
        "installed package). Options after the bench name go to that bench, e.g. "
        "`salesopt bench refresh --customers 1000 --products 50 --days 60`.",
    )
    bench.add_argument("name", nargs="?", help="one bench (default: all, at default sizes)")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="options for that bench")
    bench.add_argument("--list", action="store_true", help="list the benches and exit")
    return parser


def settings_from(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Settings:
    overrides = parse_set_flags(args.set)
    if args.warehouse:
        overrides["paths.warehouse"] = args.warehouse
    if args.landing:
        overrides["paths.landing"] = args.landing
    overrides.update(extra or {})
    conf = args.conf if args.conf is not None else (DEFAULT_CONF if DEFAULT_CONF.exists() else None)
    return load_settings(conf, overrides=overrides)


def _generate_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = ("customers", "products", "days", "start_date", "seed", "dirty_rate")
    return {f"generate.{n}": getattr(args, n) for n in names if getattr(args, n) is not None}


def cmd_generate(args: argparse.Namespace) -> int:
    from salesopt.datagen import generate
    from salesopt.session import get_spark

    settings = settings_from(args, _generate_overrides(args))
    spark = get_spark(settings.spark, settings.paths.checkpoint_dir)
    emit_summary(generate(spark, args.out, settings.generate).to_dict())
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from salesopt.pipeline import parse_stages, refresh
    from salesopt.session import get_spark

    settings = settings_from(args)
    stages = parse_stages(args.stages)
    spark = get_spark(settings.spark, settings.paths.checkpoint_dir)
    summary = refresh(spark, settings, args.as_of, stages)
    emit_summary(summary.to_dict())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from salesopt.demo import run_demo

    return run_demo(args, settings_from)


def cmd_report(args: argparse.Namespace) -> int:
    from salesopt.io.tables import Warehouse
    from salesopt.report import build_report
    from salesopt.session import get_spark

    settings = settings_from(args)
    spark = get_spark(settings.spark, settings.paths.checkpoint_dir)
    path = build_report(spark, Warehouse.from_settings(settings), args.as_of, args.out)
    emit_summary({"report": str(path.resolve())})
    return 0


def cmd_maintain(args: argparse.Namespace) -> int:
    from salesopt.maintain import maintain
    from salesopt.session import get_spark

    settings = settings_from(args)
    spark = get_spark(settings.spark, settings.paths.checkpoint_dir)
    emit_summary(maintain(spark, settings, vacuum=not args.no_vacuum))
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    from salesopt.lock import lock_kind, unlock

    settings = settings_from(args)
    spark = None
    if lock_kind(settings) == "delta":  # the lock file needs no Spark session
        from salesopt.session import get_spark

        spark = get_spark(settings.spark, settings.paths.checkpoint_dir)
    emit_summary(unlock(settings, args.run_id, spark))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from salesopt.benchrun import BenchError, available, run_benches

    try:
        if args.list:
            emit_summary({"benches": available()})
            return 0
        names = [args.name] if args.name else None
        emit_summary(run_benches(names, list(args.bench_args)))
    except BenchError as exc:
        sys.stderr.write(f"salesopt: {exc}\n")
        return exc.exit_code
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "refresh": cmd_refresh,
    "demo": cmd_demo,
    "report": cmd_report,
    "maintain": cmd_maintain,
    "unlock": cmd_unlock,
    "bench": cmd_bench,
}


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
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        sys.stderr.write(f"salesopt: configuration error: {exc}\n")
        return 2
    except SalesoptError as exc:
        sys.stderr.write(f"salesopt: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
