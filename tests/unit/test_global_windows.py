"""Windows without `partitionBy` run in one task. Spark's warning about them is silenced
(salesopt/log4j2.properties), so every such window is listed here with why its input is small."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "salesopt"
GLOBAL_WINDOW = re.compile(r"\bWindow\.(orderBy|rowsBetween|rangeBetween)\(")

# file -> number of global windows; each ranks an aggregate whose size does not grow with lines
ALLOWED = {
    "recommend/als.py": 1,  # running offsets over INDEX_BUCKETS per-bucket counts
    "forecast/prepare.py": 1,  # fan-out deal: one row per product
    "strategy/response.py": 1,  # best sellers: one row per product
}


def test_every_window_without_partition_by_is_over_a_bounded_aggregate() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        n = len(GLOBAL_WINDOW.findall(path.read_text()))
        if n:
            found[path.relative_to(PACKAGE).as_posix()] = n
    assert found == ALLOWED, (
        "a window without partitionBy was added or removed: check that its input does not grow "
        "with the order lines and update ALLOWED"
    )
