"""The forecasting stage on small inline weekly sales written as Delta under tmp_path."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from salesopt.context import StageContext
from salesopt.errors import StageFailed
from salesopt.forecast import calibration, prepare, stage
from salesopt.forecast.model import ForecastSpec, forecast_product
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
        forecast={
            "frequency": "weekly",
            "horizon": 4,
            "backtest_folds": 1,
            "partitions": 4,
            "calibration_min_points": 8,
        },
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
    assert tuple(by_id.loc["SPARSE", ["status", "model"]]) == ("ok", "tsb")
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


def test_metrics_have_product_and_overall_rows_per_method_and_horizon(result) -> None:
    ctx, res = result
    m = ctx.warehouse.read_as_of(ctx.spark, "gold", "forecast_metrics", AS_OF).toPandas()
    overall = m[m["scope"] == "overall"].set_index(["method", "horizon"])
    methods = {"model", "arima", "ets", "theta", "croston", "sba", "tsb", "seasonal_naive"}
    assert set(overall.index) == {(method, h) for method in methods for h in ("all", "1-4")}
    whole = overall.xs("all", level="horizon")
    assert (whole.loc[["croston", "sba", "tsb"], "n_products"] == 1).all()  # SPARSE only
    assert whole.loc["model", "n_products"] == len(
        m[(m["scope"] == "product") & (m["method"] == "model") & (m["horizon"] == "all")]
    )
    assert whole.loc["model", "n_products"] > whole.loc["arima", "n_products"]  # fallbacks too
    assert set(whole.loc["model", "coverage"]) == {0.8, 0.95}
    assert res.summary["backtest_mase_model"] == pytest.approx(whole.loc["model", "mase"], abs=1e-3)
    assert res.summary["backtest_horizon"] == 4
    by_horizon = res.summary["backtest_by_horizon"]  # the served model per bucket of steps
    assert set(by_horizon) == {"all", "1-4"}
    bucket = overall.loc[("model", "1-4")]
    assert by_horizon["1-4"]["mase"] == pytest.approx(bucket["mase"], abs=1e-4)
    assert by_horizon["1-4"]["coverage_0.8"] == pytest.approx(bucket["coverage"][0.8], abs=1e-4)


def test_calibration_is_applied_to_the_served_intervals(result) -> None:
    ctx, _ = result
    cal = ctx.warehouse.read_as_of(ctx.spark, "gold", "forecast_calibration", AS_OF).toPandas()
    assert set(cal["level"]) == {0.8, 0.95} and set(cal["horizon"]) == {"1-4"}
    combo = cal[cal["model"] == "combination"].set_index("level")
    # 3 planted products x 1 fold x 4 steps = 12 scores per level, above the fixture's 8
    assert (combo["n_points"] == 12).all() and combo["applied"].all()
    assert (combo["calibrated_coverage"] >= combo.index.to_numpy() - 1e-9).all()
    assert (cal.loc[cal["n_points"] < 8, "factor"] == 1.0).all()
    # end to end: the stage's interval is the per-product function's, scaled by the factor
    origin = prepare.origin_for(AS_OF, "weekly")
    good = planted_series(3, 78, "weekly", seed=5, start=START)
    series = good[(good["product_id"] == "S000000") & (good["ds"] <= origin)]
    spec = ForecastSpec.from_settings(ctx.settings.forecast)
    raw = forecast_product(series.assign(y=series["y"].astype(int)), spec, origin)
    raw = raw[(raw["kind"] == "forecast") & (raw["level"] == 0.8)].set_index("step").sort_index()
    fc = ctx.warehouse.read_as_of(ctx.spark, "gold", "forecasts", AS_OF).toPandas()
    got = fc[(fc["product_id"] == "S000000") & (fc["level"] == 0.8)].set_index("step").sort_index()
    lower, upper = calibration.scaled_bounds(
        raw["yhat"].to_numpy(),
        raw["yhat_lower"].to_numpy(),
        raw["yhat_upper"].to_numpy(),
        float(combo.loc[0.8, "factor"]),
    )
    assert got["yhat"].to_numpy() == pytest.approx(raw["yhat"].to_numpy())
    assert got["yhat_lower"].to_numpy() == pytest.approx(lower)
    assert got["yhat_upper"].to_numpy() == pytest.approx(upper)


def test_calibration_factor_is_the_level_quantile_of_the_scores(spark: SparkSession) -> None:
    scores = [("combination", 0.8, "1-4", v / 10.0) for v in range(1, 21)]
    scores += [("tsb", 0.8, "1-4", 0.5)] * 3
    scores += [("zero", 0.8, "1-4", float("inf"))] * 30
    df = spark.createDataFrame(scores, "model string, level double, horizon string, score double")
    got = stage.calibration_factors(df, (0.8,), min_points=20).toPandas().set_index("model")
    assert got.loc["combination", "factor"] == pytest.approx(1.6)
    values = np.array([v / 10.0 for v in range(1, 21)])
    assert got.loc["combination", "factor"] == calibration.factor(values, 0.8)  # same rule
    assert got.loc["combination", "raw_coverage"] == pytest.approx(0.5)
    assert bool(got.loc["combination", "applied"])
    assert not got.loc["tsb", "applied"] and got.loc["tsb", "factor"] == 1.0  # too few
    assert not got.loc["zero", "applied"] and got.loc["zero", "factor"] == 1.0  # not finite


def test_calibrated_intervals_scale_the_log1p_half_widths(spark: SparkSession) -> None:
    import math

    fc = spark.createDataFrame(
        [("P", date(2025, 1, 6), 1, 0.8, math.expm1(1.0), math.expm1(0.5), math.expm1(1.5),
          "combination"),
         ("P", date(2025, 1, 13), 5, 0.8, math.expm1(1.0), math.expm1(0.5), math.expm1(1.5),
          "combination")],
        "product_id string, ds date, step int, level double, yhat double, yhat_lower double, "
        "yhat_upper double, model string",
    )  # fmt: skip
    factors = spark.createDataFrame(
        [("combination", 0.8, "1-4", 1.6)],
        "model string, level double, horizon string, factor double",
    )
    steps = spark.createDataFrame([(1, "1-4"), (5, "5-8")], "step int, horizon string")
    got = stage.calibrated(fc, factors, steps).orderBy("step").toPandas()
    assert got.loc[0, "yhat_lower"] == pytest.approx(math.expm1(0.2))
    assert got.loc[0, "yhat_upper"] == pytest.approx(math.expm1(1.8))
    assert got.loc[1, "yhat_lower"] == pytest.approx(math.expm1(0.5))  # no factor: unchanged
    assert got.loc[1, "yhat_upper"] == pytest.approx(math.expm1(1.5))


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
