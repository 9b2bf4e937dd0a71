"""`python -m bench NAME [options]`: runs one bench, which prints its figures as a table.

    python -m bench --list
    python -m bench refresh --customers 11200 --products 2000       # about 1 M lines
    python -m bench forecast --series 2000 --json /tmp/forecast.json
    python -m bench NAME --help                                     # that bench's options

A bench writes its full result as JSON only where `--json PATH` says; nothing is stored in the
repository. Benches take minutes to hours and are not part of `make test`; docs/benchmarks.md
lists each target with the command that measures it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

BENCHES = {
    "refresh": ("bench.bench_refresh", "full refresh against the Spark floor; next-day refresh"),
    "forecast": ("bench.bench_forecast", "forecast fan-out efficiency, cost per series, MASE"),
    "forecast-real": ("bench.bench_forecast_real", "forecast accuracy on M3 monthly series"),
    "forecast-intermittent": (
        "bench.bench_forecast_intermittent",
        "intermittent forecasts on CDNOW weekly purchases",
    ),
    "recommend": ("bench.bench_recommend", "ALS fit and scoring time; --quality: holdout metrics"),
    "segment": ("bench.bench_segment", "segmentation k sweep; ARI against planted segments"),
    "elasticity": ("bench.bench_elasticity", "elasticity recovery against planted values"),
    "elasticity-real": (
        "bench.bench_elasticity_real",
        "elasticity on real scanner data (orange juice, 83 stores)",
    ),
}
USAGE = "usage: python -m bench NAME [options] | python -m bench --list"


def listing() -> str:
    """One line per bench: name and what it measures."""
    return "\n".join(f"{name:<22} {about}" for name, (_, about) in BENCHES.items())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(f"{USAGE}\n\n{listing()}")
        return 0 if args else 2
    if args[0] == "--list":
        print(listing())
        return 0
    name, rest = args[0], args[1:]
    if name not in BENCHES:
        print(f"{USAGE}\nunknown bench {name!r}; choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    # the bench's parser and its stored command read `python -m bench NAME` as the program
    sys.argv = [f"python -m bench {name}", *rest]
    module = importlib.import_module(BENCHES[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
