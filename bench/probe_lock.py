"""Probe: what the warehouse lock costs a run, the lock file against the Delta lock.

Not a registered bench (no result file): a measurement aid for `salesopt.lock`. In one local
session it takes and releases each kind of lock `--cycles` times on a fresh scratch warehouse,
the kinds interleaved `--rounds` times, and prints each cycle's seconds to acquire and to
release. The first cycle of each round creates the Delta lock table and is left out of the
summary line.

    SALESOPT_JARS_DIR=.jars .venv/bin/python -m bench.probe_lock
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import LOCAL_CONF
from salesopt.config import load_settings
from salesopt.lock import warehouse_lock
from salesopt.session import get_spark


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--conf", type=Path, default=LOCAL_CONF)
    args = p.parse_args(argv)
    base = load_settings(args.conf)
    scratch = Path(tempfile.mkdtemp(prefix="probe-lock-"))
    spark = get_spark(base.spark, str(scratch / "checkpoints"))
    warm: dict[str, list[float]] = {"file": [], "delta": []}
    for round_ in range(args.rounds):
        for kind in ("delta", "file"):
            settings = base.with_overrides(
                paths={"warehouse": str(scratch / f"{kind}-{round_}")}, ops={"lock": kind}
            )
            cycles = []
            for i in range(args.cycles):
                t0 = time.perf_counter()
                with warehouse_lock(settings, f"probe-{round_}-{i}", spark):
                    t1 = time.perf_counter()
                cycles.append((t1 - t0, time.perf_counter() - t1))
            warm[kind] += [a + r for a, r in cycles[1:]]
            print(
                f"round {round_ + 1} {kind}: acquire "
                f"{', '.join(f'{a:.2f}' for a, _ in cycles)} s; release "
                f"{', '.join(f'{r:.2f}' for _, r in cycles)} s"
            )
    for kind, total in warm.items():
        print(
            f"{kind} lock, acquire + release, after the first cycle: median "
            f"{statistics.median(total):.2f} s (min {min(total):.2f}, max {max(total):.2f})"
        )
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
