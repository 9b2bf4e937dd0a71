"""The PII key stays out of what Spark records: a refresh with the event log on never writes the
key into it (plans, job properties, configuration), and the pseudonyms are in silver."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import ROOT, TINY_AS_OF, subprocess_env, write_tiny_landing

pytestmark = [pytest.mark.spark, pytest.mark.e2e, pytest.mark.slow]

KEY = "pii-key-that-must-not-leak-7f3a"


def test_the_pii_key_is_not_in_the_event_log(tmp_path: Path) -> None:
    landing, warehouse, events = tmp_path / "landing", tmp_path / "warehouse", tmp_path / "events"
    write_tiny_landing(landing)
    events.mkdir()
    conf = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": str(events),
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "salesopt.cli", "refresh", "--conf", "conf/test.yaml",
         "--as-of", TINY_AS_OF, "--warehouse", str(warehouse), "--landing", str(landing),
         "--stages", "ingest,silver", "--set", f"spark.conf={json.dumps(conf)}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=subprocess_env(SALESOPT_PII_KEY=KEY),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    logged = "".join(p.read_text(errors="replace") for p in events.rglob("*") if p.is_file())
    assert "pii_hmac" in logged  # the plans that apply the key were recorded
    assert KEY not in logged
    assert KEY not in done.stdout + done.stderr
