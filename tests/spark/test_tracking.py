"""MLflow tracking of the shared small refresh (`small_refresh` turns it on), and its absence."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from salesopt import tracking
from salesopt.context import StageContext, StageResult
from salesopt.io.tables import Warehouse
from salesopt.summary import StageReport
from tests.conftest import SMALL_AS_OF

mlflow = pytest.importorskip("mlflow")  # make setup installs the mlflow extra
pytestmark = [pytest.mark.spark, pytest.mark.e2e]


@pytest.fixture
def use_store(monkeypatch: pytest.MonkeyPatch):
    """Points MLflow's fluent API (`models:/` URIs) at a store for one test only: the
    environment variable that `mlflow.set_tracking_uri` would leave set for later tests."""
    from mlflow.tracking._tracking_service import utils

    def use(settings) -> None:
        monkeypatch.setattr(utils, "_tracking_uri", None)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.store_uri(settings))

    return use


def _runs(settings) -> tuple:
    client = mlflow.tracking.MlflowClient(tracking.store_uri(settings))
    experiment = client.get_experiment_by_name("salesopt")
    return client, client.search_runs([experiment.experiment_id])


def test_a_refresh_logs_a_parent_run_and_a_child_run_per_model_stage(small_refresh) -> None:
    settings, _, summary = small_refresh
    assert tracking.store_uri(settings).startswith("sqlite:///")
    assert (Path(settings.paths.warehouse) / "_mlflow" / "mlflow.db").is_file()
    client, runs = _runs(settings)
    mine = [r for r in runs if r.data.tags.get(tracking.RUN_TAG) == summary.run_id]
    parents = [r for r in mine if r.data.tags[tracking.KIND_TAG] == "refresh"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[tracking.AS_OF_TAG] == SMALL_AS_OF.isoformat()
    recorded = {s.stage: s.tables for s in summary.stages}
    assert parent.data.tags["salesopt.tables.gold/forecasts"] == str(
        recorded["forecast"]["gold/forecasts"]
    )
    children = {r.data.tags["salesopt.stage"]: r for r in mine if r is not parent}
    assert set(children) == {"segment", "recommend", "forecast", "optimize", "strategy"}
    for name, child in children.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id, name
        assert child.info.status == "FINISHED", name
        files = {f.path for f in client.list_artifacts(child.info.run_id)}
        assert "summary.json" in files, name
    segment, recommend = children["segment"], children["recommend"]
    assert segment.data.params["k"] == "4"  # SMALL_REFRESH_MODELS
    assert {"k", "silhouette", "churn_risk.share"} <= set(segment.data.metrics)
    assert segment.data.tags["input.gold/customer_features"].isdigit()
    assert "segmentation" in {f.path for f in client.list_artifacts(segment.info.run_id)}
    assert recommend.data.params["max_iter"] == "5"
    assert recommend.data.metrics["served_precision_at_k"] == pytest.approx(
        summary.stage("recommend").summary["served_precision_at_k"]
    )
    assert "holdout_precision_at_k.popular" in recommend.data.metrics  # the baselines too
    assert recommend.data.tags["output.gold/recommendations"] == str(
        recorded["recommend"]["gold/recommendations"]
    )
    assert {"backtest_mase_model", "status_counts.ok"} <= set(children["forecast"].data.metrics)


def test_the_segmentation_model_reloads_by_alias(small_refresh, use_store) -> None:
    settings, _, _ = small_refresh
    use_store(settings)
    alias = f"as_of_{SMALL_AS_OF.isoformat().replace('-', '_')}"
    model = mlflow.spark.load_model(f"models:/salesopt_segmentation@{alias}")
    assert model.stages[-1].clusterCenters()  # the KMeans the refresh fitted


def test_a_logged_als_model_reloads_by_alias_and_scores(
    spark: SparkSession, settings_for, use_store
) -> None:
    from pyspark.ml.recommendation import ALS

    settings = settings_for(tracking={"enabled": True, "register_models": True})
    ratings = spark.createDataFrame(
        [(u, i, float(1 + (u + i) % 3)) for u in range(6) for i in range(5) if (u + i) % 4],
        "user int, item int, rating float",
    )
    fitted = ALS(rank=2, maxIter=3, implicitPrefs=True, seed=1, userCol="user", itemCol="item")
    model = fitted.fit(ratings)
    ctx = StageContext(spark, settings, Warehouse.from_settings(settings), SMALL_AS_OF, "r9")
    with tracking.refresh_run(ctx, ["recommend"]) as tracker:
        report = StageReport("recommend", "succeeded", 1.0, summary={"served_precision_at_k": 0.1})
        tracker.stage("recommend", report, StageResult(models={"als": model}), set())
    with tracking.refresh_run(ctx, ["optimize"]):  # a later slice of the same run id
        pass
    _client, runs = _runs(settings)
    parents = [r for r in runs if r.data.tags[tracking.KIND_TAG] == "refresh"]
    assert [(p.data.tags["salesopt.stages"], p.info.status) for p in parents] == [
        ("recommend,optimize", "FINISHED")
    ]
    use_store(settings)
    loaded = mlflow.spark.load_model("models:/salesopt_als@as_of_2025_02_03")
    pairs = spark.createDataFrame([(0, 1), (1, 2), (5, 3)], "user int, item int")
    expected = sorted(tuple(r) for r in model.transform(pairs).collect())
    assert sorted(tuple(r) for r in loaded.transform(pairs).collect()) == expected


def test_the_report_is_added_to_its_refresh_run(small_refresh, tmp_path: Path) -> None:
    settings, _, summary = small_refresh
    (tmp_path / "report.html").write_text('<a href="plan.csv">Full table</a>')
    (tmp_path / "plan.csv").write_text("product_id\nP1\n")
    (tmp_path / "unrelated.txt").write_text("not the report's")
    run_id = tracking.log_report(settings, SMALL_AS_OF, tmp_path / "report.html")
    client, runs = _runs(settings)
    parent = next(r for r in runs if r.info.run_id == run_id)
    assert parent.data.tags[tracking.RUN_TAG] == summary.run_id
    logged = [f.path for f in client.list_artifacts(run_id, "report")]
    assert logged == ["report/plan.csv", "report/report.html"]
    no_run = tracking.log_report(settings, date(2001, 1, 1), tmp_path / "report.html")
    assert no_run is None


def test_without_mlflow_tracking_is_off_with_one_line(
    spark: SparkSession, settings_for, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setattr(tracking, "mlflow_installed", lambda: False)
    settings = settings_for(tracking={"enabled": None})
    ctx = StageContext(spark, settings, Warehouse.from_settings(settings), SMALL_AS_OF, "r")
    with (
        caplog.at_level(logging.INFO, logger="salesopt.tracking"),
        tracking.refresh_run(ctx, ["gold"]) as tracker,
    ):
        assert not tracker.on
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "MLflow is not installed: runs are not tracked (pip install 'salesopt[mlflow]' to "
        "track them)"
    ]
    assert not (Path(settings.paths.warehouse) / "_mlflow").exists()
