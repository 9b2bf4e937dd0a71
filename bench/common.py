"""Shared benchmark plumbing: machine facts, storing a measured result as JSON, probe set-up."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from salesopt.config import Settings, load_settings
from salesopt.session import driver_java_options

RESULTS = Path(__file__).resolve().parent / "results"
# The default --conf of every bench and probe, found from here so that any working directory works.
LOCAL_CONF = Path(__file__).resolve().parents[1] / "conf" / "local.yaml"
# How bench_refresh times its headline incremental run (`incremental_method` in its results): the
# next day's refresh in a session that ran the previous day's (a notebook, a long-lived driver).
# Result files from 2026-12-01 13:59 to the field's introduction (2026-12-04) used this method
# without naming it; they are the ones that also time a run compiled afresh (bench.glance).
NEXT_DAY_IN_SESSION = "next day in one session"
# The 1-minute load average when the bench's process imported this module, before its work
# started: `save` runs at the end, when the load is the bench's own.
_LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def machine_info() -> dict[str, Any]:
    """Cores, memory, Python and library versions of the machine that measured, and its load
    average before the bench started and when it ended."""
    import pyspark

    try:
        mem_kb = next(
            int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )  # fmt: skip
    except (OSError, StopIteration):
        mem_kb = 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "pyspark": pyspark.__version__,
        "platform": platform.platform(),
        "load_avg_1m_at_start": _LOAD_AT_START,
        "load_avg_1m_at_end": load,
    }


def command_line() -> str:
    """The command that ran this bench, as `python -m <module> <args>`."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    module = spec.name if spec is not None else Path(sys.argv[0]).stem
    return "SALESOPT_JARS_DIR=.jars .venv/bin/python -m " + " ".join(
        [module] + [shlex.quote(a) for a in sys.argv[1:]]
    )


def save(name: str, results: dict[str, Any], command: str | None = None) -> Path:
    """Writes bench/results/<name>-<utc timestamp>.json and prints it. `SALESOPT_BENCH_RESULTS`
    names another folder (the tests that run a bench end to end use it, so that they add no
    file to bench/results)."""
    folder = Path(os.environ.get("SALESOPT_BENCH_RESULTS") or RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload = {
        "bench": name,
        "measured_at": stamp,
        "command": command or command_line(),
        "machine": machine_info(),
        "results": results,
    }
    path = folder / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(json.dumps(payload, indent=2, default=str))
    return path


def clear_codegen_cache(spark: Any) -> int:
    """Empties the JVM's cache of compiled generated code; returns how many classes it held.

    A run after it compiles its queries' code again, as the first run of a fresh process does.
    Benches that repeat one refresh call it before each run, so that no run reuses the code of
    an earlier identical one: an identical repeat compiled 4 classes where the next day's run
    compiled about 90 (docs/benchmarks.md). Spark has no API for it: the cache is the private
    `cache` of the `CodeGenerator` object, reached by reflection.
    """
    jvm, gateway = spark._jvm, spark.sparkContext._gateway
    owner = jvm.java.lang.Class.forName(
        "org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator$"
    )
    getter = owner.getDeclaredMethod("cache", gateway.new_array(jvm.java.lang.Class, 0))
    getter.setAccessible(True)
    cache = getter.invoke(
        owner.getField("MODULE$").get(None), gateway.new_array(jvm.java.lang.Object, 0)
    )
    held = int(cache.size())
    cache.invalidateAll()
    return held


def probe_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of every probe that works on a `bench.bench_refresh --workdir`."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--workdir", type=Path, required=True, help="a bench_refresh --workdir")
    p.add_argument("--customers", type=int, default=112_000)
    p.add_argument("--products", type=int, default=2_000)
    p.add_argument("--days", type=int, default=540)
    p.add_argument("--spark-conf", action="append", default=[], help="key=value (repeatable)")
    p.add_argument("--conf", type=Path, default=LOCAL_CONF)
    p.add_argument(
        "--jfr", type=Path, default=None, metavar="FILE.jfr",
        help="record the driver JVM with Java Flight Recorder into this file "
        "(read it with python -m bench.jfr_report)",
    )  # fmt: skip
    return p


def jfr_java_option(path: Path) -> str:
    """The JVM option that records the whole process into `path` (written when the JVM exits;
    the folder is made here, as the JVM does not make it).

    `settings=profile` samples running Java code every 10-20 ms and records every process the
    JVM starts; the recording slows a run by a few percent, so compare runs recorded alike."""
    target = path.resolve()
    if "," in str(target) or any(c.isspace() for c in str(target)):
        raise SystemExit(f"--jfr {path}: the path may not contain commas or spaces")
    target.parent.mkdir(parents=True, exist_ok=True)
    return f"-XX:StartFlightRecording=filename={target},settings=profile,dumponexit=true"


def workdir_overrides(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    """Settings overrides shared by the refresh bench and its probes: generator size, landing
    under `workdir`, demo mode (which permits the fixed demo PII key)."""
    return {
        "generate.customers": args.customers,
        "generate.products": args.products,
        "generate.days": args.days,
        "paths.landing": str(workdir / "landing"),
        "demo": True,
    }


def probe_settings(args: argparse.Namespace, warehouse: Path | None = None) -> Settings:
    """The settings of a probe: the bench's generator and landing, `--spark-conf` folded in,
    and with `--jfr` the recording option added to the driver's JVM options (kept, not replaced:
    a `--spark-conf spark.driver.extraJavaOptions=...`, else the configured ones, else
    salesopt's own)."""
    overrides = workdir_overrides(args, args.workdir)
    if warehouse is not None:
        overrides["paths.warehouse"] = str(warehouse)
    settings = load_settings(args.conf, overrides=overrides)
    extra = dict(kv.split("=", 1) for kv in args.spark_conf)
    if args.jfr is not None:
        key = "spark.driver.extraJavaOptions"
        options = (
            extra.get(key) or settings.spark.conf.get(key) or driver_java_options(settings.spark)
        )
        extra[key] = f"{options} {jfr_java_option(args.jfr)}"
    if extra:
        settings = settings.with_overrides(spark={"conf": {**settings.spark.conf, **extra}})
    return settings


class Timer:
    """`with Timer() as t: ...; t.seconds`"""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = round(time.perf_counter() - self._start, 3)
