"""`make bench`: runs the benchmarks one after another; each stores its JSON in bench/results/.

    make bench                                   # all, at their documented default sizes
    make bench BENCH_ARGS="refresh forecast"     # a subset by name
    salesopt bench forecast --series 2000        # one bench with its own options

Benchmarks take minutes to hours on 2 cores; they are not part of `make test`. Numbers go to
docs/benchmarks.md only as measured, with the command that produced them.
"""

from __future__ import annotations

import json
import sys

BENCHES = {
    "refresh": "bench.bench_refresh",
    "segment": "bench.bench_segment",
    "recommend": "bench.bench_recommend",
    "forecast": "bench.bench_forecast",
    "elasticity": "bench.bench_elasticity",
}


def main(argv: list[str]) -> int:
    """Each name runs at its default size; `salesopt bench NAME --opt ...` passes options."""
    from salesopt.benchrun import BenchError, run_benches

    try:
        summary = run_benches(argv or None, [])
    except BenchError as exc:
        print(f"salesopt bench: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
