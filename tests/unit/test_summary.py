"""The run summary line: what `emit_summary` prints, `read_summary` reads back (no Spark needed)."""

from __future__ import annotations

from datetime import date

import pytest

from salesopt.summary import RunSummary, StageReport, emit_summary, read_summary


def test_a_printed_summary_reads_back_after_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    summary = RunSummary(
        run_id="r1",
        as_of=str(date(2025, 6, 30)),
        status="succeeded",
        seconds=1.5,
        stages=[StageReport("ingest", "succeeded", 1.2, rows_in=7, rows_out={"bronze": 5})],
    )
    print("salesopt 0.1.0 loaded from x")
    print('log {"not": "this"}')
    emit_summary(summary.to_dict())
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 3
    back = read_summary(out)
    assert back == summary.to_dict()
    assert back["stages"][0]["rows_out"] == {"bronze": 5}


def test_the_summary_is_the_last_stdout_line_and_anything_else_is_a_clear_error() -> None:
    out = 'salesopt 0.1.0 loaded from x\nlog {"not": "this"}\n{"run_id": "r", "stages": []}\n\n'
    assert read_summary(out) == {"run_id": "r", "stages": []}
    with pytest.raises(ValueError, match="printed nothing"):
        read_summary(" \n")
    with pytest.raises(ValueError, match="not a JSON object"):
        read_summary("[1, 2]")
    with pytest.raises(ValueError, match="not JSON"):
        read_summary('{"run_id": "r", "stages": []}\nTraceback (most recent call last)')
