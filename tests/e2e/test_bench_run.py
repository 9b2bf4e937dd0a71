"""`python -m bench refresh` on a tiny generation, as its own process: the printed ratios are the
printed seconds' ratios, the lines it reports are the landing files' lines of the days it says,
and `--json` writes the same figures where asked."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import run_bench

from bench.common import LOCAL_CONF, Row, parse_table
from salesopt.config import load_settings
from salesopt.datagen import last_day
from salesopt.ingest import delivery_date

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAYS = 60
SIZE = ["--customers", "300", "--products", "30", "--days", str(DAYS)]
HOLD_DAYS = 5  # the bench's default
TITLE = re.compile(
    r"^refresh bench: ([\d,]+) lines in the full refresh \(([\d,]+) generated\), "
    r"([\d,]+) in the next day, (\d+) cores$",
    re.M,
)


def doc_path(work: Path) -> Path:
    """Where the test asks the bench to write its JSON: a folder of its own beside the workdir."""
    return work.parent / "result" / "refresh.json"


def _number(row: Row) -> float:
    """The leading number of a printed value ("12.34 (median of ...)" -> 12.34)."""
    return float(row[1].split()[0])


@pytest.fixture(scope="module")
def bench(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, str, dict[str, Row], dict[str, Any]]]:
    base = tmp_path_factory.mktemp("bench")
    work, out = base / "work", doc_path(base / "work")
    stdout = run_bench(
        "refresh", *SIZE, "--workdir", str(work), "--incremental-runs", "2", "--json", str(out)
    )
    yield work, stdout, parse_table(stdout), json.loads(out.read_text())


def _landing_lines(work: Path) -> dict[date, int]:
    """Lines per delivery date of the generated order files (docs/source-contract.md)."""
    files = list((work / "landing" / "orders").glob("*/*.txt"))
    assert files
    lines: dict[date, int] = {}
    for f in files:
        day = delivery_date(str(f))
        assert day is not None
        lines[day] = lines.get(day, 0) + len(f.read_text().splitlines())
    return lines


def _agrees(ratio: Row, numerator: float, denominator: float) -> bool:
    """The printed ratio is the printed seconds' ratio, within what the printed rounding allows
    (seconds to 0.01 s; the ratio to its own last printed place)."""
    half = 0.005
    last_place = 0.5 * 10 ** -len(ratio[1].split(".")[1])
    low = (numerator - half) / (denominator + half) - last_place
    high = (numerator + half) / (denominator - half) + last_place
    return low <= float(ratio[1]) <= high


def test_the_printed_ratios_are_the_printed_seconds_ratios(
    bench: tuple[Path, str, dict[str, Row], dict[str, Any]],
) -> None:
    _, _, rows, _ = bench
    full, floor = _number(rows["full refresh (s)"]), _number(rows["Spark floor (s)"])
    next_day, duck = _number(rows["next-day refresh (s)"]), _number(rows["DuckDB (s), reference"])
    assert min(full, floor, next_day, duck) > 0
    over_floor = rows["full refresh / floor"]
    assert _agrees(over_floor, full, floor)
    assert over_floor[2:] == ("<= 4", "met" if float(over_floor[1]) <= 4 else "missed")
    over_full = rows["next-day / full"]
    assert _agrees(over_full, next_day, full)
    assert over_full[2:] == ("<= 0.25", "met" if float(over_full[1]) <= 0.25 else "missed")
    assert _agrees(rows["full refresh / DuckDB, reference"], full, duck)
    assert rows["DuckDB (s), reference"][2:] == ("", "")  # a reference, not a target
    stages = dict(s.split() for s in rows["full refresh stages (s)"][1].split(" / "))
    assert list(stages) == ["ingest", "silver", "gold"]
    assert sum(float(v) for v in stages.values()) <= full + 0.03


def test_the_bench_reads_the_lines_of_the_days_it_says(
    bench: tuple[Path, str, dict[str, Row], dict[str, Any]],
) -> None:
    work, stdout, _, _ = bench
    title = TITLE.search(stdout)
    assert title is not None, stdout[-2000:]
    full_lines, generated, next_day_lines = (
        int(title.group(i).replace(",", "")) for i in (1, 2, 3)
    )
    end = last_day(load_settings(LOCAL_CONF, overrides={"generate.days": DAYS}).generate)
    by_day = _landing_lines(work)
    assert generated == sum(by_day.values())
    # the full refresh reads the files delivered up to end - hold - 1; the timed next day the
    # last `hold` days' (the day between is the untimed previous day)
    full_as_of, previous_day = end - timedelta(HOLD_DAYS + 1), end - timedelta(HOLD_DAYS)
    assert full_lines == sum(n for d, n in by_day.items() if d <= full_as_of)
    assert next_day_lines == sum(n for d, n in by_day.items() if previous_day < d <= end)
    assert next_day_lines > 0


def test_the_json_holds_the_printed_figures_and_the_repository_gets_no_file(
    bench: tuple[Path, str, dict[str, Row], dict[str, Any]],
) -> None:
    work, _, rows, doc = bench
    r = doc["results"]
    assert doc["bench"] == "refresh"
    assert doc["command"].startswith("python -m bench refresh --customers 300")
    assert f"{r['full_refresh_seconds']:.2f}" == rows["full refresh (s)"][1]
    assert f"{r['spark_floor_seconds']:.2f}" == rows["Spark floor (s)"][1]
    assert f"{r['full_over_floor']:.2f}" == rows["full refresh / floor"][1]
    assert f"{r['incremental_over_full']:.4f}" == rows["next-day / full"][1]
    assert len(r["incremental_runs_seconds"]) == 2
    # the next-day runs' copies are removed; the bench warehouse stays in the given workdir
    assert not list(work.glob("warehouse_next_day_*")) and not (work / "warehouse_before").exists()
    assert (work / "warehouse" / "silver" / "order_lines" / "_delta_log").is_dir()
    assert [p.name for p in Path(doc_path(work)).parent.iterdir()] == ["refresh.json"]
