"""The incremental probe's split of wall time into Spark-busy and idle seconds."""

from __future__ import annotations

import pytest

from bench.probe_incremental import _busy_seconds


def _job(start: str, end: str) -> dict[str, str]:
    return {
        "submissionTime": f"2026-11-30T23:{start}GMT",
        "completionTime": f"2026-11-30T23:{end}GMT",
    }


def test_overlapping_jobs_count_once_and_gaps_not_at_all() -> None:
    jobs = [
        _job("00:00.000", "00:02.000"),  # 0-2
        _job("00:01.500", "00:03.250"),  # overlaps: busy 0-3.25
        _job("00:05.000", "00:05.500"),  # after a 1.75 s gap
        _job("00:05.100", "00:05.200"),  # inside the previous one
    ]
    assert _busy_seconds(jobs) == pytest.approx(3.75)


def test_no_jobs_no_busy_time() -> None:
    assert _busy_seconds([]) == 0.0
