"""Summarise a Java Flight Recorder recording of the driver JVM: where one run's CPU and waits go.

Not a registered bench (no result file): a measurement aid for the probes. Record with a
probe's `--jfr FILE.jfr` (for example `bench.probe_incremental`, which prints each run's clock
times), then:

    .venv/bin/python -m bench.jfr_report FILE.jfr --from 09:46:45 --to 09:48:16

It reads the recording with the JDK's own `jfr` tool (next to `java`: `$JAVA_HOME/bin/jfr`
or on `PATH`) and prints, for the events inside the window (local clock, as `jfr print` shows
them; a window that crosses midnight wraps):

- CPU samples by thread group: Spark task threads (the executor's work), `Thread-N` (the
  driver's py4j calls: planning, Delta log reads and commits) and the rest of Spark's threads;
  the share of task samples spent generating code (Spark's per-task projections), and the most
  sampled frames of each group. In the JDK's `profile` settings a running thread is sampled
  every 10-20 ms, and only a few threads per period, so compare shares, not absolute seconds.
- Garbage collections: how many, and their summed pauses.
- Processes the JVM started (`jdk.ProcessStart`, each recorded): by command, how many concern
  Hadoop's checksum (`.crc`) files, and the Java frame that started them. Hadoop's local file
  system runs `chmod` and `readlink` as processes when its native library is absent (as in
  the pyspark wheel), a few milliseconds each.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

EVENTS = ("jdk.ExecutionSample", "jdk.GarbageCollection", "jdk.ProcessStart")
CODEGEN = (
    "org.apache.spark.sql.catalyst.expressions.codegen.Generate",
    "org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator",
)
UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
_FRAME = re.compile(r"^\s+([\w$.<>\[\]]+)\(")
_FIELD = re.compile(r"^\s+(\w+) = (.*)$")


@dataclass
class Event:
    kind: str
    fields: dict[str, str] = field(default_factory=dict)
    frames: list[str] = field(default_factory=list)

    @property
    def time(self) -> str:
        return self.fields.get("startTime", "").split()[0]

    def quoted(self, name: str) -> str:
        m = re.match(r'"(.*)"', self.fields.get(name, ""))
        return m.group(1) if m else ""


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """The events of `jfr print` text output, one `Event` per `jdk.X { ... }` block."""
    event: Event | None = None
    for line in lines:
        line = line.rstrip("\n")
        if event is None:
            m = re.match(r"^(jdk\.\w+) \{$", line)
            if m:
                event = Event(m.group(1))
            continue
        if line == "}":
            yield event
            event = None
            continue
        frame = _FRAME.match(line)  # a field line is `name = ...`, never `name(`
        if frame:
            event.frames.append(frame.group(1))
            continue
        fld = _FIELD.match(line)
        if fld and fld.group(1) not in event.fields:
            event.fields[fld.group(1)] = fld.group(2).strip()


def seconds(text: str) -> float:
    """'4.28 ms' -> 0.00428 (the units `jfr print` writes durations in)."""
    m = re.match(r"([\d.,]+)\s*(\w+)", text.strip())
    if not m or m.group(2) not in UNITS:
        return 0.0
    return float(m.group(1).replace(",", "")) * UNITS[m.group(2)]


def in_window(time: str, start: str | None, end: str | None) -> bool:
    """HH:MM:SS[.fff] inside [start, end] (inclusive to the second); wraps past midnight."""
    t = time[:8]
    if start is None and end is None:
        return True
    lo, hi = (start or "00:00:00")[:8], (end or "23:59:59")[:8]
    return lo <= t <= hi if lo <= hi else (t >= lo or t <= hi)


def thread_group(name: str) -> str:
    if name.startswith("Executor task launch worker"):
        return "task threads"
    if re.fullmatch(r"Thread-\d+", name):
        return "driver calls (Thread-N)"
    return "other threads"


@dataclass
class Report:
    samples: Counter = field(default_factory=Counter)  # thread group -> samples
    codegen_task_samples: int = 0
    top_frames: dict[str, Counter] = field(default_factory=dict)
    gc_count: int = 0
    gc_pause_s: float = 0.0
    processes: Counter = field(default_factory=Counter)  # command word -> starts
    checksum_processes: int = 0
    process_callers: Counter = field(default_factory=Counter)

    def add(self, event: Event) -> None:
        if event.kind == "jdk.ExecutionSample":
            group = thread_group(event.quoted("sampledThread"))
            self.samples[group] += 1
            if event.frames:
                self.top_frames.setdefault(group, Counter())[event.frames[0]] += 1
            if group == "task threads" and any(f.startswith(CODEGEN) for f in event.frames):
                self.codegen_task_samples += 1
        elif event.kind == "jdk.GarbageCollection":
            self.gc_count += 1
            self.gc_pause_s += seconds(event.fields.get("sumOfPauses", "0 s"))
        elif event.kind == "jdk.ProcessStart":
            command = event.quoted("command")
            self.processes[command.split(" ", 1)[0] or "?"] += 1
            self.checksum_processes += ".crc" in command
            outside = [f for f in event.frames if not f.startswith("java.lang.Process")]
            hadoop = [f for f in outside if f.startswith("org.apache.hadoop.fs.")]
            self.process_callers[(hadoop or outside or ["?"])[0]] += 1

    def lines(self, top: int) -> list[str]:
        total = sum(self.samples.values())
        out = [f"CPU samples: {total:,}"]
        for group, n in self.samples.most_common():
            out.append(f"  {group}: {n:,} ({100 * n / total:.1f} %)")
        tasks = self.samples["task threads"]
        if tasks:
            n = self.codegen_task_samples
            out.append(f"  task samples generating code: {n:,} ({100 * n / tasks:.1f} %)")
        for group, frames in sorted(self.top_frames.items()):
            out.append(f"  most sampled frames, {group}:")
            out += [f"    {n:6,} {frame}" for frame, n in frames.most_common(top)]
        out.append(f"garbage collections: {self.gc_count:,}, pauses {self.gc_pause_s:.2f} s")
        starts = sum(self.processes.values())
        by_command = ", ".join(f"{c} {n:,}" for c, n in self.processes.most_common())
        out.append(f"processes started: {starts:,}" + (f" ({by_command})" if starts else ""))
        if starts:
            out.append(f"  on checksum (.crc) files: {self.checksum_processes:,}")
            out.append("  started from:")
            out += [f"    {n:6,} {caller}" for caller, n in self.process_callers.most_common(top)]
        return out


def jfr_tool() -> str:
    """The JDK's `jfr` (beside the `java` of JAVA_HOME, else on PATH)."""
    home = os.environ.get("JAVA_HOME")
    candidates = [Path(home) / "bin" / "jfr"] if home else []
    found = shutil.which("jfr")
    candidates += [Path(found)] if found else []
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    raise SystemExit("the JDK's jfr tool was not found: set JAVA_HOME to a JDK (11 or later)")


def report(recording: Path, start: str | None, end: str | None, depth: int = 64) -> Report:
    if not recording.is_file():
        raise SystemExit(f"{recording}: no such recording")
    cmd = [jfr_tool(), "print", "--events", ",".join(EVENTS), "--stack-depth", str(depth),
           str(recording)]  # fmt: skip
    result = Report()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        assert p.stdout is not None
        for event in parse(p.stdout):
            if in_window(event.time, start, end):
                result.add(event)
        err = p.stderr.read() if p.stderr else ""
    if p.returncode != 0:
        raise SystemExit(f"jfr print failed ({p.returncode}): {err.strip()}")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recording", type=Path)
    p.add_argument("--from", dest="start", help="HH:MM:SS, local clock (a probe run's start)")
    p.add_argument("--to", dest="end", help="HH:MM:SS, local clock (a probe run's end)")
    p.add_argument("--top", type=int, default=12, help="frames and callers to list")
    args = p.parse_args(argv)
    for name in ("start", "end"):
        value = getattr(args, name)
        if value is not None and not re.fullmatch(r"\d\d:\d\d:\d\d", value):
            p.error(f"--{'from' if name == 'start' else 'to'} {value}: expected HH:MM:SS")
    window = f"{args.start or 'start'} to {args.end or 'end'}"
    print(f"{args.recording}, {window}")
    print("\n".join(report(args.recording, args.start, args.end).lines(args.top)))


if __name__ == "__main__":
    main()
