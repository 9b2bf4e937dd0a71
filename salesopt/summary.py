"""The run summary: what a refresh reports, and the one JSON line a command prints for it.

Every `salesopt` command ends by printing one JSON object as its last stdout line
(`emit_summary`); schedulers and wrappers read it back with `read_summary`. This module has no
Spark import, so a wrapper can use it without starting a session.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StageReport:
    stage: str
    status: str
    seconds: float
    rows_in: int | None = None
    rows_out: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int | None] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    message: str | None = None


@dataclass
class RunSummary:
    run_id: str
    as_of: str
    status: str
    seconds: float
    stages: list[StageReport]

    def stage(self, name: str) -> StageReport | None:
        return next((s for s in self.stages if s.stage == name), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def emit_summary(payload: dict[str, Any]) -> None:
    """Prints `payload` as the command's last stdout line (compact JSON) and flushes it."""
    sys.stdout.write(json.dumps(payload, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def read_summary(stdout: str) -> dict[str, Any]:
    """The JSON object a salesopt command printed as its last stdout line (its run summary).

    For schedulers and wrappers that capture a `salesopt` run's stdout (under `spark-submit`
    the log lines come first on stdout). Raises `ValueError` when the output is empty or its
    last non-blank line is not a JSON object.
    """
    lines = stdout.strip().splitlines()
    if not lines:
        raise ValueError("the command printed nothing: no JSON summary on its last stdout line")
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise ValueError(f"the last stdout line is not JSON ({e.msg}): {lines[-1][:200]!r}") from e
    if not isinstance(value, dict):
        raise ValueError(f"the last stdout line is not a JSON object: {lines[-1][:200]!r}")
    return value
