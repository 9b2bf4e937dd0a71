"""Helpers that let one notebook run on Databricks and locally (`notebooks/*.py`).

On Databricks, parameters come from `dbutils.widgets`; elsewhere from `SALESOPT_NB_<NAME>`
environment variables, then the notebook's default. `display` uses the platform's `display`
when there is one, else `DataFrame.show`. Notebooks hold no logic of their own: they read
parameters, call `salesopt.pipeline.refresh` and look at the tables it wrote.
"""

from __future__ import annotations

import builtins
import inspect
import logging
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from salesopt.config import Settings, load_settings, parse_iso_date
from salesopt.io.tables import Warehouse

log = logging.getLogger(__name__)

ENV_PREFIX = "SALESOPT_NB_"
PARAMS = ("conf", "warehouse", "landing", "as_of")


def _platform(name: str, frame_globals: dict[str, Any] | None = None) -> Any:
    """`name` from the notebook's globals (Databricks injects dbutils/display), else builtins."""
    if frame_globals is not None and name in frame_globals:
        return frame_globals[name]
    return getattr(builtins, name, None)


def _caller_globals() -> dict[str, Any] | None:
    frame = inspect.currentframe()
    caller = frame.f_back.f_back if frame and frame.f_back else None
    return caller.f_globals if caller else None


def _param(name: str, default: str, scope: dict[str, Any] | None) -> str:
    dbutils = _platform("dbutils", scope)
    if dbutils is not None:
        dbutils.widgets.text(name, default)
        return str(dbutils.widgets.get(name))
    return os.environ.get(ENV_PREFIX + name.upper(), default)


def get_param(name: str, default: str = "", frame_globals: dict[str, Any] | None = None) -> str:
    """A notebook parameter: Databricks widget, else $SALESOPT_NB_<NAME>, else `default`.

    `dbutils` is looked up in `frame_globals` (default: the calling notebook's globals), then
    in builtins.
    """
    return _param(name, default, frame_globals if frame_globals is not None else _caller_globals())


def display(df: DataFrame, n: int = 20, frame_globals: dict[str, Any] | None = None) -> None:
    """Shows a DataFrame with the platform's `display` when present, else `df.show`."""
    scope = frame_globals if frame_globals is not None else _caller_globals()
    show = (scope or {}).get("display")  # Databricks puts it in the notebook's globals
    if show is not None:
        show(df.limit(n))
    else:
        df.show(n, truncate=False)


@dataclass(frozen=True)
class NotebookRun:
    """What a notebook works with: settings, warehouse and business date from its parameters."""

    settings: Settings
    warehouse: Warehouse
    as_of: date


def setup(
    defaults: dict[str, str] | None = None, frame_globals: dict[str, Any] | None = None
) -> NotebookRun:
    """Reads the standard parameters (conf, warehouse, landing, as_of) and loads the settings.

    An empty `conf` means the defaults plus `SALESOPT_*` environment variables; empty
    `warehouse`/`landing` keep the configured paths. `as_of` is required.
    """
    given = defaults or {}
    scope = frame_globals if frame_globals is not None else _caller_globals()
    values = {p: _param(p, given.get(p, ""), scope) for p in PARAMS}
    if not values["as_of"]:
        raise ValueError(f"notebook parameter as_of is required (widget or ${ENV_PREFIX}AS_OF)")
    try:
        as_of = parse_iso_date(values["as_of"].strip())
    except ValueError as exc:
        raise ValueError(f"notebook parameter as_of: {exc}") from None
    overrides = {f"paths.{k}": values[k] for k in ("warehouse", "landing") if values[k]}
    settings = load_settings(Path(values["conf"]) if values["conf"] else None, overrides=overrides)
    log.info("notebook parameters: %s", values)
    return NotebookRun(settings, Warehouse.from_settings(settings), as_of)


def table(spark: SparkSession, run: NotebookRun, layer: str, name: str) -> DataFrame:
    """The `as_of` slice of a gold snapshot table, or the whole table when it has no as_of."""
    df = run.warehouse.read(spark, layer, name)
    if "as_of" not in df.columns:
        return df
    return run.warehouse.read_as_of(spark, layer, name, run.as_of)
