"""The forecasting stage on small inline weekly sales written as Delta under tmp_path."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from salesopt.context import StageContext
from salesopt.errors import StageFailed
from salesopt.forecast import prepare, stage
from salesopt.forecast.synthetic import planted_series
from salesopt.io.tables import Warehouse

pytestmark = pytest.mark.spark

AS_OF = date(2024, 12, 25)  # a Wednesday: the week of 2024-12-23 is partial
START = date(2023, 7, 3)  # a Monday; 77 complete weeks up to 2024-12-16
SALES_DDL = "product_id string, category string, week_start date, units long, as_of date"


def _weekly_sales(spark: SparkSession):
    good = planted_series(3, 78, "weekly", seed=5, start=START)  # incl. the partial week
    rows = [(r.product_id, "c", r.ds, int(r.y), AS_OF) for r in good.itertuples()]
    weeks = [START + timedelta(days=7 * i) for i in range(78)]
    rows += [("SHORT", "c", w, 3, AS_OF) for w in weeks[-6:]]
    rows += [("CONST", "c", w, 5, AS_OF) for w in weeks]
    rows += [("ZERO", "c", w, 0, AS_OF) for w in weeks[::5]]  # rows, but only cancellations
    rows += [("SPARSE", "c", w, 2, AS_OF) for w in weeks[::6]]
    rows += [("NEWBIE", "c", weeks[-1], 4, AS_OF)]  # sells only in the partial week
    return spark.createDataFrame(rows, SALES_DDL)


@pytest.fixture(scope="module")
def result(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, base_settings):
    root = tmp_path_factory.mktemp("fc")
    settings = base_settings.with_overrides(
        paths={"warehouse": str(root / "warehouse")},
        forecast={"frequency": "weekly", "horizon": 4, "backtest_folds": 1, "partitions": 4},
    )
    warehouse = Warehouse.from_settings(settings)
    warehouse.overwrite(_weekly_sales(spark), "gold", "sales_weekly")
    ctx = StageContext(spark, settings, warehouse, AS_OF, "run-1")
    return ctx, stage.run(ctx)


def test_every_product_has_one_status_row(result) -> None:
    ctx, res = result
    status = ctx.warehouse.read_as_of(ctx.spark, "gold", "forecast_status", AS_OF).toPandas()
    assert sorted(status["product_id"]) == sorted(
        ["S000000", "S000001", "S000002", "SHORT", "CONST", "ZERO", "SPARSE", "NEWBIE"]
    )
    by_id = status.set_index("product_id")
    assert by_id.loc["ZERO", "model"] == "zero"
    assert by_id.loc["NEWBIE", "reason"] == "no complete period of history"
    assert by_id.loc["CONST", "reason"] == "constant"
    assert by_id.loc["SPARSE", "model"] == "croston"
    assert by_id.loc["SHORT", "n_obs"] == 5  # the partial week is not part of the series
    assert res.summary["status_counts"]["ok"] >= 2
    assert sum(res.summary["status_counts"].values()) == 8


def test_forecasts_are_ordered_non_negative_and_start_after_origin(result) -> None:
    ctx, _ = result
    fc = ctx.warehouse.read_as_of(ctx.spark, "gold", "forecasts", AS_OF).toPandas()
    assert len(fc) == 8 * 4 * 2  # products x horizon x levels
    assert (fc["yhat_lower"] <= fc["yhat"]).all() and (fc["yhat"] <= fc["yhat_upper"]).all()
    assert (fc["yhat_lower"] >= 0).all()
    assert set(fc.loc[fc["step"] == 1, "ds"]) == {date(2024, 12, 23)}
    assert (fc["run_id"] == "run-1").all()


def test_fanout_runs_in_more_than_one_task(result) -> None:
    _, res = result
    assert res.summary["fanout_partitions"] == 4
    assert res.summary["fanout_tasks_used"] > 1


def test_metrics_have_product_and_overall_rows_for_both_methods(result) -> None:
    ctx, res = result
    m = ctx.warehouse.read_as_of(ctx.spark, "gold", "forecast_metrics", AS_OF).toPandas()
    overall = m[m["scope"] == "overall"].set_index("method")
    assert set(overall.index) == {"model", "seasonal_naive"}
    assert overall.loc["model", "n_products"] == len(
        m[(m["scope"] == "product") & (m["method"] == "model")]
    )
    assert set(overall.loc["model", "coverage"]) == {0.8, 0.95}
    assert res.summary["backtest_mase_model"] == pytest.approx(
        overall.loc["model", "mase"], abs=1e-3
    )


def test_bucketing_sends_each_bucket_to_its_own_partition(spark: SparkSession) -> None:
    keys = prepare.bucket_keys(spark, 6)
    placed = keys.repartition(6, "key").select("bucket", F.spark_partition_id().alias("part"))
    rows = placed.collect()
    assert len(rows) == 6 and all(r["bucket"] == r["part"] for r in rows)


def test_failure_share_above_threshold_fails_the_run() -> None:
    with pytest.raises(StageFailed, match="failed for 2 of 10 products"):
        stage.check_failure_share(2, 10, 0.1)
    stage.check_failure_share(1, 10, 0.1)


def test_origin_is_the_last_complete_period() -> None:
    assert prepare.origin_for(date(2024, 12, 25), "weekly") == date(2024, 12, 16)
    assert prepare.origin_for(date(2024, 12, 29), "weekly") == date(2024, 12, 23)
    assert prepare.origin_for(date(2024, 12, 25), "monthly") == date(2024, 11, 1)
    assert prepare.origin_for(date(2024, 12, 31), "monthly") == date(2024, 12, 1)
    assert isinstance(pd.Timestamp(prepare.origin_for(AS_OF, "daily")), pd.Timestamp)
