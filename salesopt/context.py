"""What a stage receives and returns. Stage modules depend on this, never on each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pyspark.sql import SparkSession

from salesopt.config import Settings
from salesopt.io.tables import Warehouse


@dataclass(frozen=True)
class StageContext:
    """One run of one business date: the session, settings, warehouse, as_of and run id."""

    spark: SparkSession
    settings: Settings
    warehouse: Warehouse
    as_of: date
    run_id: str
    # what a stage keeps for the later stages of the same run, under its module's name (the
    # batch log: `salesopt.ops.latest_batch_states`); valid because one refresh at a time writes
    # a warehouse (`salesopt.ops.local_guard`, the scheduler elsewhere)
    run_cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class StageResult:
    """What a stage did: table versions written, rows in/out, and a summary for the run log.

    `summary` holds the numbers a person wants to see after a run (JSON-serialisable);
    `models` the Spark ML models the stage fitted or used, by name, for MLflow tracking
    (`salesopt.tracking`).
    """

    tables: dict[str, int | None] = field(default_factory=dict)
    rows_in: int | None = None
    rows_out: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict, repr=False)
