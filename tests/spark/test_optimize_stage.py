"""The decisions stage end to end on small inline tables: elasticity statuses, price guardrails,
a hand-computed replenishment plan, and the plan without an inventory input."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from salesopt.config import Settings
from salesopt.context import StageContext
from salesopt.errors import InputError
from salesopt.io.tables import Warehouse
from salesopt.optimize import stage
from salesopt.optimize.replenishment import interval_z

pytestmark = pytest.mark.spark

AS_OF = date(2025, 2, 2)  # a Sunday: the first forecast week starts on Monday 2025-02-03
Z95, Z98 = 1.6448536, 2.0537489


def sales_daily(days: int = 400) -> pd.DataFrame:
    """P1: planted elasticity -2; P2: constant price; P3: 10 days of sales; P4: none."""
    rng = np.random.default_rng(5)
    dates = [AS_OF - timedelta(days=days - 1 - i) for i in range(days)]
    regime = rng.choice([0.9, 0.95, 1.0, 1.05, 1.1], size=days // 28 + 1).repeat(28)[:days]
    promo = rng.random(days) < 0.1
    p1_price = np.round(10.0 * regime * np.where(promo, 0.8, 1.0), 2)
    p1_units = np.round(
        np.exp(8.0 - 2.0 * np.log(p1_price) + 0.14 * promo + 0.05 * rng.standard_normal(days))
    )
    p2_units = rng.poisson(20, days)
    frames = [
        pd.DataFrame({"product_id": "P1", "category": "dairy", "date": dates, "units": p1_units,
                      "avg_net_price": p1_price, "discount_share": np.where(promo, 0.2, 0.0)}),
        pd.DataFrame({"product_id": "P2", "category": "produce", "date": dates, "units": p2_units,
                      "avg_net_price": 3.0, "discount_share": 0.0}),
        pd.DataFrame({"product_id": "P3", "category": "dairy", "date": dates[-10:], "units": 5,
                      "avg_net_price": 7.0, "discount_share": 0.0}),
    ]  # fmt: skip
    out = pd.concat(frames, ignore_index=True)
    out["units"] = out["units"].astype("int64")
    out["gross_units"] = out["units"]
    return out


def forecast_rows() -> list[tuple]:
    """Weekly forecasts at two interval levels built from (yhat, sigma) per product and week."""
    weeks = {"P1": [(70.0, 10.0), (140.0, 20.0), (70.0, 10.0)], "P2": [(35.0, 7.0), (70.0, 14.0)]}
    rows = []
    for pid, values in weeks.items():
        for step, (yhat, sigma) in enumerate(values, start=1):
            ds = date(2025, 2, 3) + timedelta(days=7 * (step - 1))
            for level in (0.8, 0.95):
                half = interval_z(level) * sigma
                rows.append(
                    (pid, ds, step, level, yhat, yhat - half, yhat + half, "arima", AS_OF, "f1")
                )
    return rows


FORECAST_SCHEMA = (
    "product_id string, ds date, step int, level double, yhat double, yhat_lower double, "
    "yhat_upper double, model string, as_of date, run_id string"
)


@pytest.fixture
def prepared(spark: SparkSession, settings_for) -> tuple[Settings, Warehouse]:
    settings = settings_for(
        forecast={"frequency": "weekly", "interval_levels": [0.8, 0.95]},
        optimize={
            "partitions": 2,
            "min_obs": 60,
            "category_overrides": {"produce": {"lead_time_days": 3, "service_level": 0.98}},
        },
    )
    wh = Warehouse.from_settings(settings)
    wh.overwrite(spark.createDataFrame(sales_daily()), "gold", "sales_daily")
    products = spark.createDataFrame(
        [("P1", "dairy", 5.0, "active"), ("P2", "produce", 1.5, "active"),
         ("P3", "dairy", 4.0, "active"), ("P4", "bakery", 2.0, "active")],
        "product_id string, category string, unit_cost double, status string",
    )  # fmt: skip
    wh.overwrite(products, "silver", "products")
    wh.write_slice(
        spark.createDataFrame(forecast_rows(), FORECAST_SCHEMA), "gold", "forecasts", AS_OF
    )
    return settings, wh


def run(spark: SparkSession, settings: Settings, wh: Warehouse):
    return stage.run(StageContext(spark, settings, wh, AS_OF, "r1"))


def rows_by_product(spark: SparkSession, wh: Warehouse, name: str) -> dict[str, dict]:
    df = wh.read_as_of(spark, "gold", name, AS_OF)
    return {r["product_id"]: r.asDict() for r in df.collect()}


def test_statuses_guardrails_and_plan_without_inventory(spark: SparkSession, prepared) -> None:
    settings, wh = prepared
    result = run(spark, settings, wh)
    el = rows_by_product(spark, wh, "price_elasticity")
    assert el["P1"]["status"] == "ok"
    assert el["P1"]["elasticity"] == pytest.approx(-2.0, abs=0.15)
    assert el["P2"]["status"] == "insufficient_variation"
    assert el["P3"]["status"] == "too_few_obs"
    assert (el["P4"]["status"], el["P4"]["n_obs"]) == ("too_few_obs", 0)
    assert el["P4"]["message"] == "no days with sales"
    assert el["P1"]["message"] != "no days with sales"  # a product with sales says its own
    recs = rows_by_product(spark, wh, "price_recommendations")
    # P1: p* = cost * e / (1 + e) ~ 5 * 2 = 10, within 10 % of the current price (~10)
    assert recs["P1"]["reason"] in ("optimised", "current_is_best")
    assert abs(recs["P1"]["change_pct"]) <= 10.0 + 1e-9
    assert recs["P2"]["reason"] == "elasticity_insufficient_variation"
    assert recs["P2"]["suggested_price"] == recs["P2"]["current_price"] == pytest.approx(3.0)
    assert recs["P4"]["reason"] == "no_recent_sales"
    assert result.summary["products_elasticity_ok"] == 1
    assert result.summary["elasticity_status"] == {
        "ok": 1,
        "insufficient_variation": 1,
        "too_few_obs": 2,
    }
    assert result.rows_out == {
        "gold/price_elasticity": 4, "gold/price_recommendations": 4, "gold/replenishment_plan": 2,
    }  # fmt: skip
    plan = rows_by_product(spark, wh, "replenishment_plan")  # no silver/inventory: levels only
    assert {p["plan_basis"] for p in plan.values()} == {"no_inventory_input"}
    assert all(p["on_hand"] is None and p["suggested_order_qty"] is None for p in plan.values())
    assert plan["P1"]["order_up_to"] == pytest.approx(210.0 + Z95 * np.sqrt(500.0), rel=1e-6)


def test_replenishment_plan_matches_hand_computation(spark: SparkSession, prepared) -> None:
    settings, wh = prepared
    inventory = spark.createDataFrame(
        [(date(2025, 1, 26), "P1", 500), (AS_OF, "P1", 100), (date(2025, 2, 5), "P1", 999)],
        "snapshot_date date, product_id string, on_hand long",
    )
    wh.overwrite(inventory, "silver", "inventory")
    result = run(spark, settings, wh)
    plan = rows_by_product(spark, wh, "replenishment_plan")
    p1 = plan["P1"]  # L = R = 7 days: week 1 for L, weeks 1-2 for L + R
    assert p1["demand_lead_time"] == pytest.approx(70.0)
    assert p1["demand_lead_review"] == pytest.approx(210.0)
    assert p1["sigma_lead_review"] == pytest.approx(np.sqrt(10.0**2 + 20.0**2))
    assert p1["order_up_to"] == pytest.approx(210.0 + Z95 * np.sqrt(500.0), rel=1e-6)  # 246.78
    assert (p1["on_hand"], p1["on_hand_date"], p1["plan_basis"]) == (100, AS_OF, "on_hand")
    # the default R_S policy: up to the order-up-to level at every review
    assert (p1["policy"], p1["reorder_point"], p1["order_reason"]) == ("R_S", None, "review")
    assert p1["suggested_order_qty"] == 147  # ceil(246.78 - 100)
    assert p1["recent_units"] > 0  # P1 sells every day
    p2 = plan["P2"]  # produce override: L = 3, R = 7 -> week 1 plus 3/7 of week 2
    assert (p2["lead_time_days"], p2["service_level"]) == (3, 0.98)
    assert p2["demand_lead_time"] == pytest.approx(15.0)
    assert p2["sigma_lead_time"] == pytest.approx(np.sqrt(21.0))
    assert p2["demand_lead_review"] == pytest.approx(65.0)
    assert p2["safety_stock"] == pytest.approx(Z98 * np.sqrt(133.0), rel=1e-6)
    assert p2["order_up_to"] == pytest.approx(65.0 + Z98 * np.sqrt(133.0), rel=1e-6)
    assert (p2["on_hand"], p2["suggested_order_qty"], p2["plan_basis"]) == (
        None, None, "no_inventory_input",
    )  # fmt: skip
    assert result.summary["total_suggested_order_units"] == 147
    continuous = settings.with_overrides(optimize={"policy": "s_S"})
    result = run(spark, continuous, wh)
    p1 = rows_by_product(spark, wh, "replenishment_plan")["P1"]
    assert p1["reorder_point"] == pytest.approx(70.0 + Z95 * 10.0, rel=1e-6)  # 86.45
    # s_S: 100 on hand is above the reorder point, no order yet
    assert (p1["policy"], p1["suggested_order_qty"]) == ("s_S", 0)
    assert p1["order_reason"] == "above_reorder_point"
    assert result.summary["total_suggested_order_units"] == 0


def test_missing_forecast_slice_fails_before_writing(spark: SparkSession, prepared) -> None:
    settings, wh = prepared
    later = date(2025, 2, 9)
    with pytest.raises(InputError, match="gold/forecasts has no slice for as_of 2025-02-09"):
        stage.run(StageContext(spark, settings, wh, later, "r2"))
    assert not wh.exists(spark, "gold", "price_elasticity")
