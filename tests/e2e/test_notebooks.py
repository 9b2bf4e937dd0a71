"""Every notebook in notebooks/ runs end to end, in order, on a small warehouse, as a plain Python
script in this process (the `# MAGIC` lines are comments), and leaves its output tables.

A notebook whose pipeline stage is not registered in `salesopt.pipeline.STAGES` fails here (with
the pipeline's "unknown stage(s)" message): it is not skipped.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from salesopt.io.tables import Warehouse
from tests.conftest import SMALL_AS_OF

pytestmark = [pytest.mark.spark, pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
OUTPUTS = {
    "01_ingest_quality": [("silver", "order_lines"), ("gold", "sales_daily"),
                          ("gold", "customer_features"), ("ops", "quality_results")],
    "02_segmentation": [("gold", "customer_segments"), ("gold", "segment_profiles")],
    "03_recommendations": [("gold", "recommendations"), ("gold", "recommendation_metrics")],
    "04_forecasting": [("gold", "forecasts"), ("gold", "forecast_status"),
                       ("gold", "forecast_metrics")],
    "05_optimization_report": [("gold", "replenishment_plan"), ("gold", "price_recommendations"),
                               ("gold", "segment_playbook"), ("gold", "sales_anomalies")],
}  # fmt: skip
MAY_BE_EMPTY = {("gold", "sales_anomalies")}  # no anomaly on the day is a valid outcome


def test_notebooks_are_databricks_source_files() -> None:
    assert NOTEBOOKS
    assert [p.stem for p in NOTEBOOKS] == sorted(OUTPUTS)
    for path in NOTEBOOKS:
        text = path.read_text()
        assert text.startswith("# Databricks notebook source\n"), path.name
        assert "\n# COMMAND ----------\n" in text and "\n# MAGIC %md" in text, path.name
        assert "nb.setup()" in text and "refresh(spark, run.settings, run.as_of" in text, path.name


@pytest.fixture(scope="module")
def notebook_warehouse(small_generated, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Parameters shared by the notebooks, and which of them already ran (in order)."""
    out, _, _ = small_generated
    warehouse = tmp_path_factory.mktemp("notebook_warehouse")
    params = {
        "SALESOPT_NB_CONF": str(ROOT / "conf" / "test.yaml"),
        "SALESOPT_NB_WAREHOUSE": str(warehouse),
        "SALESOPT_NB_LANDING": str(out / "landing"),
        "SALESOPT_NB_AS_OF": SMALL_AS_OF.isoformat(),
    }
    return {"params": params, "warehouse": Warehouse(str(warehouse)), "ran": []}


def run_notebook(path: Path, state: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for earlier in NOTEBOOKS[: NOTEBOOKS.index(path)]:
        if earlier.stem not in state["ran"]:
            run_notebook(earlier, state, monkeypatch)
    for key, value in state["params"].items():
        monkeypatch.setenv(key, value)
    runpy.run_path(str(path), run_name="__main__")
    state["ran"].append(path.stem)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_writes_its_tables(
    path: Path, spark: SparkSession, notebook_warehouse: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path.stem not in notebook_warehouse["ran"]:
        run_notebook(path, notebook_warehouse, monkeypatch)
    wh: Warehouse = notebook_warehouse["warehouse"]
    for layer, name in OUTPUTS[path.stem]:
        assert wh.exists(spark, layer, name), f"{path.name} did not write {layer}/{name}"
        df = wh.read(spark, layer, name)
        if "as_of" in df.columns:
            df = df.where(df["as_of"] == SMALL_AS_OF)
        if (layer, name) not in MAY_BE_EMPTY:
            assert not df.isEmpty(), f"{layer}/{name} has no rows for {SMALL_AS_OF}"
