"""Shared bench plumbing: the default conf, a timer, the printed table and the optional JSON."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

# The default --conf of every bench, found from here so that any working directory works.
LOCAL_CONF = Path(__file__).resolve().parents[1] / "conf" / "local.yaml"
# The 1-minute load average when the bench's process imported this module, before its work.
_LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

# One printed row: figure, value, target ("" for none), status ("met", "missed" or "").
Row = tuple[str, str, str, str]
HEADER = ("figure", "value", "target", "status")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """`--json PATH`: where the bench writes its full result (nothing is written without it)."""
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH",
        help="also write the full result as JSON to PATH",
    )  # fmt: skip


def machine_info() -> dict[str, Any]:
    """Cores, memory, Python and pyspark versions, and the load average before and after."""
    import pyspark

    try:
        mem_kb = next(
            int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )  # fmt: skip
    except (OSError, StopIteration):
        mem_kb = 0
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "pyspark": pyspark.__version__,
        "platform": platform.platform(),
        "load_avg_1m_at_start": _LOAD_AT_START,
        "load_avg_1m_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def command_line() -> str:
    """The command that ran this bench (`python -m bench NAME ...`, as bench/__main__ sets it)."""
    return " ".join([sys.argv[0], *(shlex.quote(a) for a in sys.argv[1:])])


def table(title: str, rows: Sequence[Row]) -> str:
    """The bench's figures as a Markdown table under a one-line title."""
    lines = [title, "", "| " + " | ".join(HEADER) + " |", "| --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def parse_table(text: str) -> dict[str, Row]:
    """The rows of a table printed by `table`, by figure (what the smoke tests read back)."""
    rows: dict[str, Row] = {}
    for line in text.splitlines():
        cells = tuple(c.strip() for c in line.strip().strip("|").split(" | "))
        is_row = line.startswith("| ") and len(cells) == len(HEADER) and cells != HEADER
        if is_row and not set(cells[0]) <= {"-"}:  # not the header's separator line
            rows[cells[0]] = (cells[0], cells[1], cells[2], cells[3])
    return rows


def status(value: float, limit: float, higher_is_better: bool = False) -> str:
    """ "met" or "missed" against a target `<= limit` (or `>= limit`)."""
    ok = value >= limit if higher_is_better else value <= limit
    return "met" if ok else "missed"


def report(
    name: str, title: str, rows: Sequence[Row], results: dict[str, Any], json_path: Path | None
) -> None:
    """Prints the table of figures; with `json_path`, writes the full result there as well."""
    print(table(title, rows), flush=True)
    if json_path is None:
        return
    payload = {
        "bench": name,
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command_line(),
        "machine": machine_info(),
        "results": results,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\nfull result: {json_path}", flush=True)


def clear_codegen_cache(spark: Any) -> int:
    """Empties the JVM's cache of compiled generated code; returns how many classes it held.

    A run after it compiles its queries' code again, as the first run of a fresh process does.
    The refresh bench calls it before each next-day run, so that no run reuses the code of an
    earlier identical one. Spark has no API for it: the cache is the private `cache` of the
    `CodeGenerator` object, reached by reflection.
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


class Timer:
    """`with Timer() as t: ...; t.seconds`"""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = round(time.perf_counter() - self._start, 3)


CACHE = Path.home() / ".cache" / "salesopt-bench"  # downloaded files; outside the repository


def downloaded_wheel(requirement: str) -> Path:
    """The wheel of `requirement` (`name==version`) in CACHE, downloaded once, not installed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    name, version = requirement.split("==")
    # wheel names spell the project as published (Lifetimes-...) with "-" as "_"
    prefix = f"{name.replace('-', '_')}-{version}-".lower()

    def cached() -> list[Path]:
        return sorted(p for p in CACHE.glob("*.whl") if p.name.lower().startswith(prefix))

    found = cached()
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             requirement, "-d", str(CACHE)], check=True, capture_output=True,
        )  # fmt: skip
        found = cached()
    return found[-1]


class DownloadError(RuntimeError):
    """A pinned download that failed or did not match its checksum; the message says what to do."""


def downloaded_deb(urls: Sequence[str], sha256: str, timeout: float = 120.0) -> Path:
    """The file at the first of `urls` (mirrors of one file, e.g. a Debian package), in CACHE
    under its file name, downloaded once and checked against `sha256` (a cached copy too)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / unquote(urls[0].rsplit("/", 1)[-1])
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
        return path
    failures = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
        except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
            failures.append(f"{url}: {exc}")
            continue
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            failures.append(f"{url}: sha256 {got}, not the pinned {sha256}")
            continue
        part = path.with_name(path.name + ".part")
        part.write_bytes(data)
        part.replace(path)
        return path
    raise DownloadError(
        f"cannot get {path.name} ({'; '.join(failures)}); check the network (a proxy: "
        f"set http_proxy) or put the file with sha256 {sha256} at {path}"
    )
