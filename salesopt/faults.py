"""Fault-injection points for the crash and concurrency tests. A no-op in normal runs.

A fault point is one call, `inject("silver_merge")`, placed where a test needs to stop a run.
Nothing happens unless the environment variable `SALESOPT_TEST_FAULT` names that point:

- `silver_merge:kill` - the process kills itself with SIGKILL (no cleanup, no `finally`), as a
  crashed node or an OOM kill would;
- `silver_merge:kill@2` - the same, at the second time the point is reached (the second batch);
- `silver_merge:wait=/tmp/go` - the run pauses there until the file `/tmp/go` exists (at most
  `WAIT_LIMIT_S`), so a test can hold a run mid-stage while it starts a second one.

Points in the code, all in `silver._merge_silver`: `silver_merge` (right before the writes into
`silver/order_lines`), `silver_appended` (between the append of new lines and the MERGE of newer
versions; reached only when a batch holds newer versions of lines in silver) and
`silver_written` (after the writes, before the batch is logged as cleaned).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)

FAULT_ENV = "SALESOPT_TEST_FAULT"
WAIT_LIMIT_S = 300.0
_hits: dict[str, int] = {}


def inject(point: str) -> None:
    """Acts on `$SALESOPT_TEST_FAULT` if it names `point` (see module docstring); else nothing."""
    spec = os.environ.get(FAULT_ENV, "")
    name, _, action = spec.partition(":")
    if not spec or name != point:
        return
    _hits[point] = _hits.get(point, 0) + 1
    if action.startswith("kill"):
        _, _, nth = action.partition("@")
        if _hits[point] == int(nth or 1):
            log.warning("fault injection: killing the process at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("wait="):
        release = Path(action.removeprefix("wait="))
        log.warning("fault injection: pausing at %s until %s exists", point, release)
        deadline = time.monotonic() + WAIT_LIMIT_S
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    else:
        raise ValueError(f"{FAULT_ENV}={spec!r}: expected <point>:kill[@n] or <point>:wait=<file>")
