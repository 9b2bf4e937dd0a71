"""Rejected-share limits per source file and per batch (pure Python: no Spark)."""

from __future__ import annotations

from salesopt.config import CleanSettings
from salesopt.silver import FileLines, rejected_share_findings

CFG = CleanSettings(
    max_rejected_share_per_file=0.5, max_rejected_share_per_batch=0.2, rejected_share_min_lines=10
)


def test_a_mostly_rejected_file_is_named_with_its_main_reason() -> None:
    files = [
        FileLines("s3://l/orders/batch_date=2025-03-03/good.json", 1000, 12, "wrong_type"),
        FileLines("s3://l/orders/batch_date=2025-03-03/blob.bin", 40, 40, "malformed_record"),
    ]
    assert rejected_share_findings("b7", files, CFG) == [
        "s3://l/orders/batch_date=2025-03-03/blob.bin: 40 of 40 lines rejected (100%, mostly "
        "malformed_record), above clean.max_rejected_share_per_file = 0.5"
    ]  # the batch as a whole: 52 of 1040 (5%), under its limit


def test_the_batch_limit_and_the_minimum_size() -> None:
    files = [FileLines(f"f{i}", 100, 30, "invalid_price") for i in range(3)]
    assert rejected_share_findings("b1", files, CFG) == [
        "batch b1: 90 of 300 lines rejected (30%), above clean.max_rejected_share_per_batch = 0.2"
    ]
    tiny = [FileLines("late.json", 3, 3, "late_beyond_window")]  # too few lines to judge
    assert rejected_share_findings("b2", tiny, CFG) == []
    assert rejected_share_findings("b3", [], CFG) == []
