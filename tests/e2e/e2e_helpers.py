"""Tiny hand-written landing data and subprocess helpers for the job, crash and lock tests.

Imported by the e2e test modules (pytest puts this folder on sys.path)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from salesopt.pipeline import WAREHOUSE_STAGES

ROOT = Path(__file__).resolve().parents[2]
CORE = WAREHOUSE_STAGES
# run bookkeeping: differs between two runs that write the same rows
BOOKKEEPING = ("run_id", "_ingested_at", "_batch_id", "as_of")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TINY_AS_OF = "2025-03-04"
# gold/sales_daily units of `write_tiny_landing`, (product_id, date) -> units: the newer
# version of O1/1 (4 units) replaces the first delivery's 2
TINY_DAILY_UNITS = {
    ("P1", "2025-03-02"): 3, ("P1", "2025-03-03"): 4, ("P2", "2025-03-03"): 1,
    ("P2", "2025-03-04"): 5,
}  # fmt: skip


def order_line(order: str, no: int, product: str = "P1", qty: int = 1, **extra: object) -> str:
    ts = str(extra.pop("ts", "2025-03-03T10:00:00Z"))
    record = {
        "order_id": order, "line_no": no, "customer_id": "C1", "product_id": product,
        "quantity": qty, "unit_price": 2.5, "discount": 0.0, "order_ts": ts, "updated_at": ts,
        "status": "completed", "channel": "web", **extra,
    }  # fmt: skip
    return json.dumps(record)


def write_tiny_landing(root: Path) -> dict[str, int]:
    """Two deliveries, 8 raw lines: 4 accepted, 2 quarantined, 2 superseded. Returns the counts."""
    (root / "products").mkdir(parents=True)
    (root / "customers").mkdir(parents=True)
    (root / "products" / "p.csv").write_text(
        "product_id,product_name,category,unit_cost,list_price,launch_date,status\n"
        "P1,Milk,dairy,1.0,2.5,2024-01-01,active\nP2,Bread,bakery,1.0,3.0,2024-01-01,active\n"
    )
    (root / "customers" / "c.csv").write_text(
        "customer_id,name,email,phone,region,signup_date\n"
        "C1,Ana Smith,ana@x.org,+1-555-1,north,2024-01-01\n"
    )
    deliveries = {
        "batch_date=2025-03-03/a.json": [
            order_line("O1", 1, qty=2),
            order_line("O1", 2, "P2", 1),
            order_line("O2", 1, qty=3, ts="2025-03-02T09:00:00Z"),
            order_line("O3", 1, "P9", 1),  # unknown product -> quarantine
            "{not json",  # malformed -> quarantine
        ],
        "batch_date=2025-03-04/b.json": [
            order_line("O1", 1, qty=4, updated_at="2025-03-04T08:00:00Z"),  # newer version of O1/1
            order_line("O1", 1, qty=2),  # resent old version -> superseded
            order_line("O4", 1, "P2", 5, ts="2025-03-04T11:00:00Z"),
        ],
    }
    for name, lines in deliveries.items():
        path = root / "orders" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{text}\n" for text in lines))
    return {"raw_lines_read": 8, "accepted": 4, "quarantined": 2, "superseded_duplicates": 2}


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test's environment (PII key set by the `spark` fixture) plus the jars and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_")}
    env.setdefault("SALESOPT_JARS_DIR", str(ROOT / ".jars"))
    env.setdefault("SALESOPT_PII_KEY", "test-only-pii-key")
    env.update(extra)
    return env


def run_bench(name: str, *args: str) -> str:
    """Runs `python -m bench <name> <args>`; returns its stdout, after asserting it succeeded."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", name, *args], cwd=ROOT, capture_output=True, text=True,
        env=subprocess_env(), timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def cli_refresh_cmd(
    warehouse: Path, landing: Path, stages: Sequence[str] = CORE, patch: str = ""
) -> list[str]:
    """`python -m salesopt.cli refresh` on the test settings, one core, small memory.

    With `patch` (Python source), the process runs `python -c`: the patch first, then
    `salesopt.cli.main` on the same arguments. That is how a test stops a real refresh process
    at a chosen point (it replaces a function), with no test code in salesopt itself.
    """
    if patch:
        run_main = "import sys\nfrom salesopt.cli import main\nsys.exit(main(sys.argv[1:]))\n"
        launcher = ["-c", f"{patch}\n{run_main}"]
    else:
        launcher = ["-m", "salesopt.cli"]
    return [
        sys.executable, *launcher, "refresh", "--conf", str(ROOT / "conf" / "test.yaml"),
        "--as-of", TINY_AS_OF, "--warehouse", str(warehouse), "--landing", str(landing),
        "--stages", ",".join(stages), "--set", "spark.master=local[1]",
        "--set", "spark.driver_memory=1g",
    ]  # fmt: skip


def start(cmd: list[str], stdout: Path, stderr: Path, **env: str) -> subprocess.Popen[bytes]:
    """Starts `cmd` in the background, its output going to the two files."""
    with stdout.open("wb") as out, stderr.open("wb") as err:
        return subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(**env), stdout=out, stderr=err)


def comparable(df: DataFrame) -> DataFrame:
    """Drops bookkeeping columns; maps become sorted JSON so rows can be ordered and compared."""
    columns = [
        F.to_json(F.array_sort(F.map_entries(f.name))).alias(f.name)
        if isinstance(f.dataType, T.MapType)
        else F.col(f.name)
        for f in df.schema.fields
        if f.name not in BOOKKEEPING
    ]
    return df.select(*columns)
