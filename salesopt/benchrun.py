"""`salesopt bench`: runs the benchmarks of a source checkout and reports where each result went.

The benchmarks live in `bench/` at the repository root, next to the results they store, and are
not part of the installed package. This module finds that checkout (the current directory or one
of its parents, else the checkout an editable install points at), runs each bench as its own
process (`python -m bench.<module> ...`, so one bench's Spark session never leaks into the next)
and returns one summary: bench name, exit code, seconds and the result file it wrote.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import salesopt

log = logging.getLogger(__name__)


class BenchError(Exception):
    """A bench could not be started or failed; `exit_code` is what the CLI returns."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _is_checkout(root: Path) -> bool:
    return (root / "bench" / "run.py").is_file() and (root / "salesopt").is_dir()


def find_checkout(start: Path | None = None) -> Path:
    """The source checkout that holds `bench/`: cwd or a parent, else the package's own parent."""
    here = (start or Path.cwd()).resolve()
    for root in (here, *here.parents):
        if _is_checkout(root):
            return root
    package_parent = Path(salesopt.__file__).resolve().parent.parent
    if _is_checkout(package_parent):
        return package_parent
    raise BenchError(
        "salesopt bench runs from a source checkout: bench/ ships with the repository, not with "
        "the installed package. Run it inside a clone (make bench does the same).",
        exit_code=2,
    )


def _registry(root: Path) -> dict[str, str]:
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module("bench.run")
    return dict(module.BENCHES)


def available(start: Path | None = None) -> dict[str, str]:
    """Bench name -> module, from `bench/run.py` of the checkout."""
    return _registry(find_checkout(start))


def _newest_result(results: Path, name: str, since: float) -> str | None:
    found = [p for p in results.glob(f"{name}-*.json") if p.stat().st_mtime >= since]
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None


def run_benches(
    names: Sequence[str] | None, bench_args: Sequence[str], start: Path | None = None
) -> dict[str, Any]:
    """Runs the named benches (all when `names` is empty) and returns a summary per bench."""
    root = find_checkout(start)
    registry = _registry(root)
    chosen = list(names or registry)
    unknown = [n for n in chosen if n not in registry]
    if unknown:
        raise BenchError(f"unknown bench {unknown}; choose from {', '.join(registry)}", 2)
    if bench_args and len(chosen) != 1:
        raise BenchError("options after the bench name need exactly one bench name", 2)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    runs: dict[str, Any] = {}
    for name in chosen:
        started = time.time()
        cmd = [sys.executable, "-m", registry[name], *bench_args]
        log.info("bench %s: %s", name, " ".join(cmd[1:]))
        # The bench's own JSON goes to stderr so stdout keeps one summary line for schedulers.
        rc = subprocess.run(cmd, cwd=root, env=env, stdout=sys.stderr, check=False).returncode
        runs[name] = {
            "exit_code": rc,
            "seconds": round(time.time() - started, 1),
            "result": _newest_result(root / "bench" / "results", name, started),
        }
    failed = [n for n, r in runs.items() if r["exit_code"] != 0]
    if failed:
        raise BenchError(f"bench failed: {', '.join(failed)} (see the output above)")
    return {"benches": runs}
