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
    """P1: planted elasticity -2; P2: constant price; P3: 10 days of sales; P4: none; P5 like P1
    (elasticity -1.5), but with many lines quarantined (see `prepared`)."""
    rng = np.random.default_rng(5)
    dates = [AS_OF - timedelta(days=days - 1 - i) for i in range(days)]
    regime = rng.choice([0.9, 0.95, 1.0, 1.05, 1.1], size=days // 28 + 1).repeat(28)[:days]
    promo = rng.random(days) < 0.1
    p1_price = np.round(10.0 * regime * np.where(promo, 0.8, 1.0), 2)
    p1_units = np.round(
        np.exp(8.0 - 2.0 * np.log(p1_price) + 0.14 * promo + 0.05 * rng.standard_normal(days))
    )
    p2_units = rng.poisson(20, days)
    p5_units = np.round(
        np.exp(7.0 - 1.5 * np.log(p1_price) + 0.14 * promo + 0.05 * rng.standard_normal(days))
    )
    frames = [
        pd.DataFrame({"product_id": "P1", "category": "dairy", "date": dates, "units": p1_units,
                      "avg_net_price": p1_price, "discount_share": np.where(promo, 0.2, 0.0)}),
        pd.DataFrame({"product_id": "P2", "category": "produce", "date": dates, "units": p2_units,
                      "avg_net_price": 3.0, "discount_share": 0.0}),
        pd.DataFrame({"product_id": "P3", "category": "dairy", "date": dates[-10:], "units": 5,
                      "avg_net_price": 7.0, "discount_share": 0.0}),
        pd.DataFrame({"product_id": "P5", "category": "dairy", "date": dates, "units": p5_units,
                      "avg_net_price": p1_price, "discount_share": np.where(promo, 0.2, 0.0)}),
    ]  # fmt: skip
    out = pd.concat(frames, ignore_index=True)
    out["units"] = out["units"].astype("int64")
    out["gross_units"] = out["units"]
    return out


def order_lines(daily: pd.DataFrame) -> pd.DataFrame:
    """silver/order_lines-like rows: one line per product and day; P1 and P5 sell in two
    stores (half the units each; P1 at one price, P5 dearer at S2 half the time), the others
    without store_id."""
    rows = daily.assign(
        order_date=daily["date"],
        quantity=daily["units"],
        promo=daily["discount_share"] > 0,
        discount=0.0,
        is_cancelled=False,
        store_id=None,
    )
    split = rows["product_id"].isin(["P1", "P5"])
    halves = [
        rows[split].assign(store_id=store, quantity=(rows.loc[split, "units"] // 2).astype(int))
        for store in ("S1", "S2")
    ]
    # P5 costs 8 % more at S2 in every other 4-week block: prices differ by store
    s2 = halves[1]
    dearer = (s2["product_id"] == "P5") & ((pd.to_datetime(s2["date"]).dt.dayofyear // 28) % 2 == 1)
    s2.loc[dearer, "avg_net_price"] *= 1.08
    s2.loc[dearer, "quantity"] = np.round(s2.loc[dearer, "quantity"] * 1.08**-1.5).astype(int)
    out = pd.concat([rows[~split], *halves], ignore_index=True)
    out["net_amount"] = out["quantity"] * out["avg_net_price"]
    out["order_id"] = [f"O{i}" for i in range(len(out))]
    columns = ["order_id", "product_id", "order_date", "quantity", "net_amount", "discount",
               "promo", "is_cancelled", "store_id"]  # fmt: skip
    return out[columns]


LINES_SCHEMA = (
    "order_id string, product_id string, order_date date, quantity int, net_amount double, "
    "discount double, promo boolean, is_cancelled boolean, store_id string"
)


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
            "min_obs": 40,
            "category_overrides": {"produce": {"lead_time_days": 3, "service_level": 0.98}},
        },
    )
    wh = Warehouse.from_settings(settings)
    daily = sales_daily()
    wh.overwrite(spark.createDataFrame(daily), "gold", "sales_daily")
    wh.overwrite(spark.createDataFrame(order_lines(daily), LINES_SCHEMA), "silver", "order_lines")
    # 70 of P5's 870 lines quarantined (8 % > max_quarantined_share 5 %), 5 of P1's (0.6 %)
    quarantined = [("P5", AS_OF - timedelta(days=7 + i)) for i in range(70)]
    quarantined += [("P1", AS_OF - timedelta(days=7 + i)) for i in range(5)]
    quarantined += [(None, AS_OF)]  # unreadable product: not attributed
    wh.overwrite(
        spark.createDataFrame(
            [("{...}", "rule:x", pid, d) for pid, d in quarantined],
            "raw string, reason string, product_id string, order_date date",
        ),
        "quarantine", "orders_rejected",
    )  # fmt: skip
    products = spark.createDataFrame(
        [("P1", "dairy", 5.0, "active"), ("P2", "produce", 1.5, "active"),
         ("P3", "dairy", 4.0, "active"), ("P4", "bakery", 2.0, "active"),
         ("P5", "dairy", 4.0, "active")],
        "product_id string, category string, unit_cost double, status string",
    )  # fmt: skip
    wh.overwrite(products, "silver", "products")
    wh.write_slice(
        spark.createDataFrame(forecast_rows(), FORECAST_SCHEMA), "gold", "forecasts", AS_OF
    )
    return settings, wh


def run(spark: SparkSession, settings: Settings, wh: Warehouse):
    return stage.run(StageContext(spark, settings, wh, AS_OF, "r1"))


def plan_rows(spark: SparkSession, settings: Settings, wh: Warehouse) -> dict[str, dict]:
    """`stage.replenishment_plan` alone, as the stage calls it."""
    ctx = StageContext(spark, settings, wh, AS_OF, "r1")
    sales = wh.read(spark, "gold", "sales_daily")
    position = stage.current_position(sales, AS_OF, settings.optimize.price_window_days)
    plan = stage.replenishment_plan(ctx, wh.read(spark, "silver", "products"), position)
    return {r["product_id"]: r.asDict() for r in plan.collect()}


def rows_by_product(spark: SparkSession, wh: Warehouse, name: str) -> dict[str, dict]:
    df = wh.read_as_of(spark, "gold", name, AS_OF)
    return {r["product_id"]: r.asDict() for r in df.collect()}


def test_statuses_guardrails_and_plan_without_inventory(spark: SparkSession, prepared) -> None:
    settings, wh = prepared
    result = run(spark, settings, wh)
    el = rows_by_product(spark, wh, "price_elasticity")
    p1 = el["P1"]
    # one price in both stores: summed into one series
    assert (p1["status"], p1["specification"], p1["n_locations"]) == ("ok", "summed_locations", 1)
    assert p1["elasticity"] == pytest.approx(-2.0, abs=0.25)
    assert p1["ci_low"] < p1["elasticity"] < p1["ci_high"] < 0
    # the only ok product of its category: nothing to shrink toward
    assert (p1["shrinkage_weight"], p1["elasticity"]) == (1.0, p1["elasticity_raw"])
    assert p1["quarantined_share"] == pytest.approx(5 / (5 + 2 * 400))
    assert el["P2"]["status"] == "insufficient_variation", el["P2"]["message"]
    assert el["P2"]["specification"] == "pooled"  # no store_id
    assert el["P3"]["status"] == "too_few_obs"
    assert (el["P4"]["status"], el["P4"]["n_obs"]) == ("too_few_obs", 0)
    assert el["P4"]["message"] == "no weeks with sales in the history"
    assert "summed into one series" in p1["message"]  # a product with sales says its own
    p5 = el["P5"]  # a good fit, refused: its quarantined lines could be its biggest weeks
    assert p5["status"] == "censored"
    assert p5["quarantined_share"] == pytest.approx(70 / (70 + 2 * 400))
    assert p5["elasticity"] is None and p5["elasticity_raw"] == pytest.approx(-1.5, abs=0.3)
    assert (p5["specification"], p5["n_locations"]) == ("location_fixed_effects", 2)
    assert "quarantined" in p5["message"]
    recs = rows_by_product(spark, wh, "price_recommendations")
    # P1: p* = cost * e / (1 + e) ~ 5 * 2 = 10, within 10 % of the current price (~10)
    assert recs["P1"]["reason"] in ("optimised", "current_is_best")
    assert abs(recs["P1"]["change_pct"]) <= 10.0 + 1e-9
    assert recs["P2"]["reason"] == "elasticity_insufficient_variation"
    assert recs["P2"]["suggested_price"] == recs["P2"]["current_price"] == pytest.approx(3.0)
    assert recs["P4"]["reason"] == "no_recent_sales"
    assert recs["P5"]["reason"] == "elasticity_censored"
    assert result.summary["products_elasticity_ok"] == 1
    assert result.summary["elasticity_status"] == {
        "ok": 1,
        "insufficient_variation": 1,
        "too_few_obs": 2,
        "censored": 1,
    }
    assert result.rows_out == {
        "gold/price_elasticity": 5, "gold/price_recommendations": 5, "gold/replenishment_plan": 2,
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
    plan = plan_rows(spark, settings, wh)  # the plan alone: it does not read the elasticities
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
    assert sum(p["suggested_order_qty"] or 0 for p in plan.values()) == 147
    p1 = plan_rows(spark, settings.with_overrides(optimize={"policy": "s_S"}), wh)["P1"]
    assert p1["reorder_point"] == pytest.approx(70.0 + Z95 * 10.0, rel=1e-6)  # 86.45
    # s_S: 100 on hand is above the reorder point, no order yet
    assert (p1["policy"], p1["suggested_order_qty"]) == ("s_S", 0)
    assert p1["order_reason"] == "above_reorder_point"


def test_missing_forecast_slice_fails_before_writing(spark: SparkSession, prepared) -> None:
    settings, wh = prepared
    later = date(2025, 2, 9)
    with pytest.raises(InputError, match="gold/forecasts has no slice for as_of 2025-02-09"):
        stage.run(StageContext(spark, settings, wh, later, "r2"))
    assert not wh.exists(spark, "gold", "price_elasticity")
