"""bench.jfr_report: the summary of a Java Flight Recorder recording, on text in `jfr print`'s
format and on a recording made here by a real JVM."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.common import jfr_java_option, probe_parser, probe_settings
from bench.jfr_report import Report, in_window, jfr_tool, parse, report, seconds

PRINTED = """\
jdk.ExecutionSample {
  startTime = 09:46:50.010
  sampledThread = "Executor task launch worker for task 3.0 in stage 7.0 (TID 12)" (javaThreadId = 90)
  state = "STATE_RUNNABLE"
  stackTrace = [
    java.util.regex.Pattern$BmpCharProperty.match(Matcher, int, CharSequence) line: 3972
    org.apache.spark.sql.catalyst.expressions.codegen.CodeFormatter$.stripExtraNewLinesAndComments(String) line: 211
    org.apache.spark.sql.catalyst.expressions.codegen.GenerateUnsafeProjection$.create(Seq) line: 380
    ...
  ]
}

jdk.ExecutionSample {
  startTime = 09:46:50.030
  sampledThread = "Executor task launch worker for task 4.0 in stage 7.0 (TID 13)" (javaThreadId = 91)
  state = "STATE_RUNNABLE"
  stackTrace = [
    org.apache.spark.unsafe.types.UTF8String.fromBytes(byte[], int, int) line: 118
    org.apache.spark.sql.execution.vectorized.OnHeapColumnVector.getBytesAsUTF8String(int, int) line: 575
    ...
  ]
}

jdk.ExecutionSample {
  startTime = 09:46:51.000
  sampledThread = "Thread-4" (javaThreadId = 21)
  state = "STATE_RUNNABLE"
  stackTrace = [
    org.apache.spark.sql.catalyst.trees.TreeNode.transformDownWithPruning(Function1, Function1, Function1) line: 480
    ...
  ]
}

jdk.GarbageCollection {
  startTime = 09:46:52.000
  duration = 4.28 ms
  gcId = 3
  name = "G1New"
  cause = "G1 Evacuation Pause"
  sumOfPauses = 4.28 ms
  longestPause = 4.28 ms
}

jdk.ProcessStart {
  startTime = 09:46:53.100
  pid = 3986
  directory = N/A
  command = "readlink file:/w/ops/runs/_delta_log/.00000000000000000008.json.crc"
  eventThread = "Thread-4" (javaThreadId = 21)
  stackTrace = [
    java.lang.ProcessBuilder.start(ProcessBuilder$Redirect[]) line: 1124
    org.apache.hadoop.util.Shell.runCommand() line: 998
    org.apache.hadoop.fs.FileUtil.readLink(File) line: 225
    org.apache.hadoop.fs.RawLocalFileSystem.deprecatedGetFileLinkStatusInternal(Path) line: 1314
    ...
  ]
}

jdk.ProcessStart {
  startTime = 09:47:10.000
  pid = 3987
  directory = N/A
  command = "chmod 0644 /w/silver/order_lines/order_date=2025-06-01/part-0.parquet"
  eventThread = "Executor task launch worker for task 4.0 in stage 7.0 (TID 13)" (javaThreadId = 91)
  stackTrace = [
    java.lang.ProcessBuilder.start() line: 1073
    org.apache.hadoop.util.Shell.runCommand() line: 998
    org.apache.hadoop.fs.RawLocalFileSystem.setPermission(Path, FsPermission) line: 1120
    ...
  ]
}
"""  # noqa: E501 (lines as `jfr print` writes them)


def _report(start: str | None = None, end: str | None = None) -> Report:
    r = Report()
    for event in parse(PRINTED.splitlines(keepends=True)):
        if in_window(event.time, start, end):
            r.add(event)
    return r


def test_the_printed_events_are_counted_by_kind_thread_and_command() -> None:
    events = list(parse(PRINTED.splitlines(keepends=True)))
    assert [e.kind for e in events] == ["jdk.ExecutionSample"] * 3 + [
        "jdk.GarbageCollection", "jdk.ProcessStart", "jdk.ProcessStart",
    ]  # fmt: skip
    assert events[0].frames[0] == "java.util.regex.Pattern$BmpCharProperty.match"
    assert len(events[0].frames) == 3  # the "..." line is not a frame
    r = _report()
    assert r.samples == {"task threads": 2, "driver calls (Thread-N)": 1}
    assert r.codegen_task_samples == 1
    assert (r.gc_count, round(r.gc_pause_s, 5)) == (1, 0.00428)
    assert r.processes == {"readlink": 1, "chmod": 1}
    assert r.checksum_processes == 1
    assert r.process_callers == {
        "org.apache.hadoop.fs.FileUtil.readLink": 1,
        "org.apache.hadoop.fs.RawLocalFileSystem.setPermission": 1,
    }
    text = "\n".join(r.lines(top=5))
    assert "task samples generating code: 1 (50.0 %)" in text
    assert "processes started: 2 (readlink 1, chmod 1)" in text


def test_the_window_keeps_only_its_seconds_and_wraps_past_midnight() -> None:
    r = _report("09:46:51", "09:46:53")
    assert r.samples == {"driver calls (Thread-N)": 1}
    assert (r.gc_count, r.processes) == (1, {"readlink": 1})
    assert in_window("23:59:59.500", "23:59:00", "00:01:00")
    assert in_window("00:00:30.000", "23:59:00", "00:01:00")
    assert not in_window("12:00:00.000", "23:59:00", "00:01:00")


def test_durations_in_every_unit_jfr_prints() -> None:
    assert [seconds(t) for t in ("250 ns", "3 us", "4.28 ms", "1.5 s", "2 min")] == pytest.approx(
        [250e-9, 3e-6, 0.00428, 1.5, 120.0]
    )
    assert seconds("N/A") == 0.0


def test_a_recording_of_a_real_jvm_counts_its_processes(tmp_path: Path) -> None:
    source = tmp_path / "Spawn.java"
    source.write_text(
        "public class Spawn { public static void main(String[] a) throws Exception {\n"
        '  new ProcessBuilder("true", "plain").start().waitFor();\n'
        '  new ProcessBuilder("true", "/tmp/.part-0.parquet.crc").start().waitFor();\n'
        "} }\n"
    )
    java = Path(jfr_tool()).with_name("java")
    recording = tmp_path / "spawn.jfr"
    option = jfr_java_option(recording)
    subprocess.run([str(java), option, str(source)], check=True, capture_output=True, timeout=120)
    r = report(recording, None, None)
    assert r.processes == {"true": 2}
    assert r.checksum_processes == 1
    assert r.process_callers == {"Spawn.main": 2}


def test_a_missing_recording_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no such recording"):
        report(tmp_path / "none.jfr", None, None)


def test_jfr_adds_the_recording_to_the_driver_options_it_keeps(tmp_path: Path) -> None:
    key = "spark.driver.extraJavaOptions"
    recording = tmp_path / "r" / "x.jfr"
    args = probe_parser("probe").parse_args(["--workdir", str(tmp_path), "--jfr", str(recording)])
    options = probe_settings(args).spark.conf[key]
    assert "-Dlog4j2.configurationFile=" in options  # salesopt's own, kept
    assert options.endswith(
        f"-XX:StartFlightRecording=filename={recording},settings=profile,dumponexit=true"
    )
    assert recording.parent.is_dir()  # made for the JVM, which does not create folders
    args = probe_parser("probe").parse_args(
        ["--workdir", str(tmp_path), "--jfr", str(recording), "--spark-conf", f"{key}=-Dmine=1"]
    )
    options = probe_settings(args).spark.conf[key]
    assert options.startswith("-Dmine=1 -XX:StartFlightRecording=")
    with pytest.raises(SystemExit, match="commas or spaces"):
        jfr_java_option(tmp_path / "a,b.jfr")
