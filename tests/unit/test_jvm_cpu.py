"""bench.jvm_cpu: a JVM's CPU seconds by thread role, from /proc."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.common import Timer
from bench.jfr_report import jfr_tool
from bench.jvm_cpu import JvmCpu, Run, describe, local_jvm_pid, read
from bench.probe_next_day import daily_runs, parse_args


def _stat(utime: int, stime: int, name: str = "java") -> str:
    # fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
    # cmajflt utime stime ...
    return f"42 ({name}) S 1 42 42 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0 9 0\n"


def _fake_proc(root: Path, threads: dict[str, tuple[int, int]], process: tuple[int, int]) -> Path:
    base = root / "42"
    (base / "task").mkdir(parents=True)
    (base / "stat").write_text(_stat(*process))
    for tid, (name, (u, s)) in enumerate(threads.items(), start=100):
        task = base / "task" / str(tid)
        task.mkdir()
        (task / "comm").write_text(name.split("|")[0] + "\n")
        (task / "stat").write_text(_stat(u, s, name.split("|")[0]))
    return root


def test_threads_are_summed_by_role(tmp_path: Path) -> None:
    proc = _fake_proc(
        tmp_path,
        {
            "C2 CompilerThre": (500, 20),
            "C1 CompilerThre": (40, 2),
            "GC Thread#0": (30, 0),
            "GC Thread#1": (25, 5),
            "G1 Conc#0": (10, 0),
            "Sweeper thread": (7, 1),
            "Executor task l": (900, 100),
            "Executor task l|2": (800, 0),
        },
        process=(2500, 300),
    )
    cpu = read(42, proc, tick=100)
    assert cpu == JvmCpu(process=28.0, c2=5.2, c1=0.42, gc=0.7, sweeper=0.08)
    assert cpu.jit == pytest.approx(5.62)


def test_a_difference_and_its_line(tmp_path: Path) -> None:
    later = JvmCpu(process=180.0, c2=60.0, c1=6.0, gc=10.0, sweeper=3.0)
    earlier = JvmCpu(process=20.0, c2=10.0, c1=4.0, gc=2.0, sweeper=1.0)
    run = later - earlier
    assert run == JvmCpu(process=160.0, c2=50.0, c1=2.0, gc=8.0, sweeper=2.0)
    assert describe(run) == (
        "JVM CPU 160.0 s: JIT compiler 52.0 s (32 %; C2 50.0, C1 2.0), GC 8.0 s (5 %), "
        "code sweeper 2.0 s"
    )
    assert "(-;" in describe(JvmCpu())


def test_a_run_reads_before_and_after_its_block(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, {"C2 CompilerThre": (100, 0)}, process=(1000, 0))
    with Run(42, proc, tick=100) as run:
        (proc / "42" / "stat").write_text(_stat(1600, 200))
        (proc / "42" / "task" / "100" / "stat").write_text(_stat(340, 20, "C2 CompilerThre"))
    assert run.cpu == JvmCpu(process=8.0, c2=2.6)
    assert run.seconds >= 0 and run.began <= run.ended
    clock, cpu = run.report().split("\n")
    assert clock == (
        f"clock: {run.began} to {run.ended} (bench.jfr_report --from {run.began} --to {run.ended})"
    )
    assert cpu.startswith("JVM CPU 8.0 s: JIT compiler 2.6 s (32 %; C2 2.6, C1 0.0)")


def test_a_run_without_a_pid_only_times(tmp_path: Path) -> None:
    # where /proc cannot show the driver (bench_refresh: `local_jvm_pid` gives None)
    with Run(None, tmp_path / "no-proc") as run:
        pass
    assert run.cpu is None and isinstance(run, Timer) and run.seconds >= 0
    assert run.report() == (
        f"clock: {run.began} to {run.ended} (bench.jfr_report --from {run.began} --to {run.ended})"
    )


def test_the_next_day_probe_plans_its_days_back_from_the_last_one() -> None:
    end = date(2025, 6, 30)
    assert daily_runs(end, 1, 1) == [("first run", date(2025, 6, 29)), ("next day", end)]
    assert daily_runs(end, 1, 4) == [("first run", date(2025, 6, 26)), ("next day", end)]
    assert daily_runs(end, 3, 2) == [
        ("first run", date(2025, 6, 24)),
        ("next day 1", date(2025, 6, 26)),
        ("next day 2", date(2025, 6, 28)),
        ("next day 3", end),
    ]
    args = parse_args(["--workdir", "/tmp/w", "--day-runs", "5"])
    assert (args.day_runs, args.next_days, args.days) == (5, 1, 540)  # --days: the generator's
    with pytest.raises(SystemExit):
        parse_args(["--workdir", "/tmp/w", "--day-runs", "0"])


def test_a_bench_stores_the_seconds_by_role_and_only_where_proc_shows_the_driver(
    tmp_path: Path,
) -> None:
    cpu = JvmCpu(process=160.04, c2=50.03, c1=2.01, gc=8.0, sweeper=2.0)
    assert cpu.as_dict() == {
        "process": 160.0, "c2": 50.0, "c1": 2.0, "gc": 8.0, "sweeper": 2.0, "jit": 52.0,
    }  # fmt: skip

    class Connect:  # a Spark Connect session has no py4j gateway to ask for the pid
        pass

    def classic(pid: int) -> SimpleNamespace:  # what jvm_pid asks of a classic session
        bean = SimpleNamespace(getPid=lambda: pid)
        factory = SimpleNamespace(getRuntimeMXBean=lambda: bean)
        management = SimpleNamespace(ManagementFactory=factory)
        jvm = SimpleNamespace(java=SimpleNamespace(lang=SimpleNamespace(management=management)))
        return SimpleNamespace(_jsc=object(), sparkContext=SimpleNamespace(_jvm=jvm))

    proc = _fake_proc(tmp_path / "proc", {}, process=(1, 0))
    assert local_jvm_pid(classic(42), proc) == 42
    assert local_jvm_pid(classic(43), proc) is None  # a driver on another machine
    assert local_jvm_pid(Connect(), proc) is None
    assert local_jvm_pid(classic(42), tmp_path / "absent") is None


def test_a_process_that_is_not_here_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no process 7 under"):
        read(7, tmp_path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_a_real_jvm_shows_its_compiler_threads(tmp_path: Path) -> None:
    source = tmp_path / "Busy.java"
    source.write_text(
        "public class Busy { public static void main(String[] a) throws Exception {\n"
        "  long x = 0;\n"
        "  for (int r = 0; r < 200; r++) for (int i = 0; i < 1_000_000; i++) x += (i ^ r) % 7;\n"
        '  System.out.println("ready " + x); System.out.flush(); Thread.sleep(60_000);\n'
        "} }\n"
    )
    java = Path(jfr_tool()).with_name("java")
    jvm = subprocess.Popen([str(java), str(source)], stdout=subprocess.PIPE, text=True)
    try:
        assert jvm.stdout is not None and jvm.stdout.readline().startswith("ready")
        cpu = read(jvm.pid)
    finally:
        jvm.kill()
        jvm.wait(timeout=30)
    # compiling the source file in the JVM and the hot loop both keep the JIT busy
    assert cpu.c1 > 0 and cpu.c2 > 0
    assert cpu.process >= cpu.jit + cpu.gc + cpu.sweeper
