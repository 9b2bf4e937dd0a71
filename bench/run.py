"""`make bench`: runs the benchmarks one after another; each stores its JSON in bench/results/.

    make bench                                   # all, at their documented default sizes
    make bench BENCH_ARGS="refresh forecast"     # a subset by name

Benchmarks take minutes to hours on 2 cores; they are not part of `make test`. Numbers go to
docs/benchmarks.md only as measured, with the command that produced them.
"""

from __future__ import annotations

import subprocess
import sys

BENCHES = {
    "refresh": "bench.bench_refresh",
    "segment": "bench.bench_segment",
    "recommend": "bench.bench_recommend",
    "forecast": "bench.bench_forecast",
    "elasticity": "bench.bench_elasticity",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown bench {unknown}; choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"== bench {name}", flush=True)
        if subprocess.run([sys.executable, "-m", BENCHES[name]], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
