"""`salesopt bench`: finding the checkout, running a bench as its own process, the summary line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from salesopt.benchrun import BenchError, find_checkout, run_benches
from salesopt.cli import build_parser
from salesopt.summary import read_summary

ROOT = Path(__file__).resolve().parents[2]

FAKE_RUN = """
BENCHES = {"tiny": "bench.bench_tiny", "broken": "bench.bench_broken"}
"""
FAKE_TINY = """
import json, sys, time
from pathlib import Path
out = Path("bench/results"); out.mkdir(parents=True, exist_ok=True)
(out / f"tiny-{time.time_ns()}.json").write_text(json.dumps({"args": sys.argv[1:]}))
print("tiny bench ran", sys.argv[1:])
"""


@pytest.fixture
def fake_checkout(tmp_path: Path) -> Path:
    (tmp_path / "salesopt").mkdir()
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "__init__.py").write_text("")
    (bench / "run.py").write_text(FAKE_RUN)
    (bench / "bench_tiny.py").write_text(FAKE_TINY)
    (bench / "bench_broken.py").write_text("raise SystemExit(3)\n")
    for name in [m for m in sys.modules if m == "bench" or m.startswith("bench.")]:
        del sys.modules[name]  # the registry of this fake checkout, not the real one
    yield tmp_path
    for name in [m for m in sys.modules if m == "bench" or m.startswith("bench.")]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if p != str(tmp_path)]


def test_bench_arguments_pass_through_to_the_bench() -> None:
    args = build_parser().parse_args(["bench", "refresh", "--customers", "10", "--skip-duckdb"])
    assert args.name == "refresh"
    assert args.bench_args == ["--customers", "10", "--skip-duckdb"]


def test_checkout_is_found_from_a_subfolder() -> None:
    assert find_checkout(ROOT / "docs") == ROOT


def test_run_records_exit_code_and_result_file(fake_checkout: Path) -> None:
    summary = run_benches(["tiny"], ["--size", "3"], start=fake_checkout)
    run = summary["benches"]["tiny"]
    assert run["exit_code"] == 0
    assert json.loads(Path(run["result"]).read_text()) == {"args": ["--size", "3"]}


def test_failed_and_unknown_benches_are_one_line_errors(fake_checkout: Path) -> None:
    with pytest.raises(BenchError, match="bench failed: broken") as failed:
        run_benches(["broken"], [], start=fake_checkout)
    assert failed.value.exit_code == 1
    with pytest.raises(BenchError, match="unknown bench") as unknown:
        run_benches(["nope"], [], start=fake_checkout)
    assert unknown.value.exit_code == 2
    with pytest.raises(BenchError, match="exactly one bench"):
        run_benches(None, ["--size", "3"], start=fake_checkout)


def test_cli_lists_the_real_benches() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "salesopt.cli", "bench", "--list"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    benches = read_summary(out)["benches"]
    assert set(benches) == {"refresh", "segment", "recommend", "forecast", "elasticity"}
