"""The replenishment plan transform on inline rows: each order reason under both policies."""

from __future__ import annotations

import math
from datetime import date

import pytest
from pyspark.sql import SparkSession

from salesopt.optimize import replenishment as rp

pytestmark = pytest.mark.spark

Z95 = 1.6448536
S_A = 210.0 + Z95 * math.sqrt(500.0)  # order-up-to of the worked example: 246.78
DEMAND_SCHEMA = (
    "product_id string, category string, lead_time_days int, review_period_days int, "
    "service_level double, z double, demand_lead_time double, demand_lead_review double, "
    "sigma_lead_time double, sigma_lead_review double, covered_days int, "
    "interval_level double, forecast_model string"
)


def _demand(spark: SparkSession):
    worked = (70.0, 210.0, 10.0, math.sqrt(500.0))  # reorder point 86.45, order-up-to 246.78
    tiny = (0.1, 0.2, 0.05, 0.1)  # under half a unit over L + R
    rows = [(pid, "dairy", 7, 7, 0.95, Z95, *values, 14, 0.95, "combination")
            for pid, values in (("A", worked), ("B", worked), ("C", worked), ("D", tiny),
                                ("E", tiny), ("F", worked))]  # fmt: skip
    return spark.createDataFrame(rows, DEMAND_SCHEMA)


def _plan(spark: SparkSession, policy: str, with_recent: bool = True) -> dict[str, dict]:
    stock = spark.createDataFrame(
        [(pid, date(2025, 2, 2), units) for pid, units in
         (("A", 80), ("B", 100), ("C", 300), ("D", 0), ("E", 0))],
        "product_id string, on_hand_date date, on_hand long",
    )  # fmt: skip
    recent = spark.createDataFrame([("E", 3.0)], "product_id string, recent_units double")
    out = rp.plan(_demand(spark), stock, policy, recent if with_recent else None)
    return {r["product_id"]: r.asDict() for r in out.collect()}


def test_s_s_orders_only_at_or_below_the_reorder_point(spark: SparkSession) -> None:
    plan = _plan(spark, rp.CONTINUOUS)
    got = {pid: (p["suggested_order_qty"], p["order_reason"]) for pid, p in plan.items()}
    assert got == {
        "A": (167, "at_or_below_reorder_point"),  # ceil(246.78 - 80)
        "B": (0, "above_reorder_point"),  # 100 > 86.45: stock covers the lead time
        "C": (0, "above_reorder_point"),
        "D": (0, "no_demand"),  # 0.2 units forecast, no recent sale: no order of 1
        "E": (1, "at_or_below_reorder_point"),  # the same forecast, but it sold recently
        "F": (None, "no_inventory_input"),
    }
    assert plan["A"]["reorder_point"] == pytest.approx(70.0 + Z95 * 10.0)
    assert plan["A"]["order_up_to"] == pytest.approx(S_A)
    assert {p["policy"] for p in plan.values()} == {"s_S"}
    assert plan["D"]["recent_units"] is None and plan["E"]["recent_units"] == 3.0


def test_r_s_orders_up_to_the_level_at_every_review(spark: SparkSession) -> None:
    plan = _plan(spark, rp.PERIODIC)
    got = {pid: (p["suggested_order_qty"], p["order_reason"]) for pid, p in plan.items()}
    assert got == {
        "A": (167, "review"),
        "B": (147, "review"),  # ceil(246.78 - 100)
        "C": (0, "stock_covers_order_up_to"),
        "D": (0, "no_demand"),
        "E": (1, "review"),
        "F": (None, "no_inventory_input"),
    }
    assert all(p["reorder_point"] is None for p in plan.values())  # R_S has no reorder point
    assert {p["policy"] for p in plan.values()} == {"R_S"}


def test_without_recent_sales_the_no_demand_rule_is_not_applied(spark: SparkSession) -> None:
    plan = _plan(spark, rp.PERIODIC, with_recent=False)
    assert (plan["D"]["suggested_order_qty"], plan["D"]["order_reason"]) == (1, "review")
    with pytest.raises(ValueError, match="unknown replenishment policy 'sS'"):
        rp.plan(_demand(spark), None, "sS")
