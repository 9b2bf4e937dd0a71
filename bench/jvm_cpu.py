"""CPU seconds of a JVM by thread role, read from Linux's `/proc` (a driver on this machine).

A flight recording's CPU samples cover threads running Java code only; the JIT compiler's
threads, the garbage collector and HotSpot's code sweeper do not show there. `/proc` counts
every thread's user + system time, so the probes can say how much of a run's CPU went to
compiling rather than to tasks:

    with Run(jvm_pid(spark)) as run:
        refresh(...)
    print(run.seconds, run.report())

`process` includes threads that have ended (the kernel folds their time into the process);
the roles count threads alive at the reading, which for HotSpot's compiler, GC and sweeper
threads is the whole life of the JVM on this machine (2 cores: one C1 and one C2 thread).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bench.common import Timer

PROC = Path("/proc")

# thread names as `/proc/<pid>/task/<tid>/comm` shows them (cut to 15 characters)
ROLES = {
    "c2": ("C2 CompilerThre",),
    "c1": ("C1 CompilerThre",),
    "gc": ("GC Thread#", "G1 "),
    "sweeper": ("Sweeper thread",),
}


@dataclass(frozen=True)
class JvmCpu:
    """CPU seconds (user + system) of one JVM, in all and by thread role."""

    process: float = 0.0
    c2: float = 0.0
    c1: float = 0.0
    gc: float = 0.0
    sweeper: float = 0.0

    def __sub__(self, other: JvmCpu) -> JvmCpu:
        return JvmCpu(
            **{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(JvmCpu)}
        )

    @property
    def jit(self) -> float:
        return self.c1 + self.c2

    def as_dict(self) -> dict[str, float]:
        """Seconds by role and the compiler's sum, to 0.1 s (a bench's result file)."""
        out = {f.name: round(getattr(self, f.name), 1) for f in fields(JvmCpu)}
        return {**out, "jit": round(self.jit, 1)}


def _cpu_seconds(stat_file: Path, tick: int) -> float:
    """utime + stime of a `stat` file (fields 14 and 15; the name in brackets may hold spaces)."""
    after_name = stat_file.read_text().rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / tick


def read(pid: int, proc: Path = PROC, tick: int | None = None) -> JvmCpu:
    """The JVM's CPU seconds now. A thread that ends while it is read is skipped."""
    tick = tick or os.sysconf("SC_CLK_TCK")
    base = proc / str(pid)
    if not (base / "stat").is_file():
        raise SystemExit(f"no process {pid} under {proc}: the JVM must run on this machine")
    roles = dict.fromkeys(ROLES, 0.0)
    for task in (base / "task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            seconds = _cpu_seconds(task / "stat", tick)
        except (FileNotFoundError, ProcessLookupError):
            continue
        for role, prefixes in ROLES.items():
            if name.startswith(prefixes):
                roles[role] += seconds
    return JvmCpu(process=_cpu_seconds(base / "stat", tick), **roles)


def jvm_pid(spark: Any) -> int:
    """The process id of a classic session's driver JVM."""
    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    return int(runtime.getPid())


def local_jvm_pid(spark: Any, proc: Path = PROC) -> int | None:
    """`jvm_pid` when `proc` can show the driver (a classic session on Linux), else None."""
    if getattr(spark, "_jsc", None) is None or not proc.is_dir():
        return None
    pid = jvm_pid(spark)
    return pid if (proc / str(pid) / "stat").is_file() else None


def describe(cpu: JvmCpu) -> str:
    """One line: the JVM's CPU seconds and the compiler's, GC's and sweeper's shares."""
    share = (lambda s: f"{100 * s / cpu.process:.0f} %") if cpu.process > 0 else (lambda s: "-")
    return (
        f"JVM CPU {cpu.process:.1f} s: JIT compiler {cpu.jit:.1f} s ({share(cpu.jit)}; "
        f"C2 {cpu.c2:.1f}, C1 {cpu.c1:.1f}), GC {cpu.gc:.1f} s ({share(cpu.gc)}), "
        f"code sweeper {cpu.sweeper:.1f} s"
    )


class Run(Timer):
    """A `Timer` that also keeps its clock times and, given a `pid`, the JVM's CPU over the block
    (`cpu`; None without a pid, where `/proc` cannot show the driver)."""

    def __init__(self, pid: int | None, proc: Path = PROC, tick: int | None = None) -> None:
        self.pid, self._proc, self._tick = pid, proc, tick
        self.seconds, self.began, self.ended = 0.0, "", ""
        self.cpu: JvmCpu | None = None

    def _read(self) -> JvmCpu | None:
        return None if self.pid is None else read(self.pid, self._proc, self._tick)

    def __enter__(self) -> Run:
        self.began, self._cpu_before = time.strftime("%H:%M:%S"), self._read()
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.ended, after = time.strftime("%H:%M:%S"), self._read()
        if after is not None and self._cpu_before is not None:
            self.cpu = after - self._cpu_before

    def report(self) -> str:
        """The clock times (for `bench.jfr_report`) and, when read, `describe` of the CPU."""
        clock = (
            f"clock: {self.began} to {self.ended} "
            f"(bench.jfr_report --from {self.began} --to {self.ended})"
        )
        return clock if self.cpu is None else f"{clock}\n{describe(self.cpu)}"
