"""Sales series on small inline silver lines: the staged aggregation gives the documented
measures."""

from __future__ import annotations

from datetime import date

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import DataFrame, SparkSession

from salesopt.sales import sales_daily, sales_weekly

pytestmark = pytest.mark.spark

LINES = (
    "order_id string, customer_id string, product_id string, category string, order_date date, "
    "quantity int, gross_amount double, discount double, net_amount double, is_cancelled boolean"
)
MEASURES = (
    "product_id string, category string, {period} date, units long, gross_units long, "
    "returned_units long, revenue double, avg_net_price double, avg_unit_price double, "
    "discount_share double, n_orders long, n_customers long"
)
MON, TUE, NEXT_MON = date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 10)


def _lines(spark: SparkSession) -> DataFrame:
    rows = [
        # C1 buys P1 twice in one order (two lines) and once more in a second order, same day
        ("O1", "C1", "P1", "dairy", MON, 2, 10.0, 1.0, 9.0, False),
        ("O1", "C1", "P1", "dairy", MON, 1, 5.0, 0.0, 5.0, False),
        ("O2", "C1", "P1", "dairy", MON, 1, 5.0, 0.0, 5.0, False),
        # C2: one sold line and one cancelled line (counts nowhere)
        ("O3", "C2", "P1", "dairy", MON, 3, 15.0, 3.0, 12.0, False),
        ("O3", "C2", "P1", "dairy", MON, 9, 45.0, 0.0, 45.0, True),
        # a return of O1 on Tuesday: net units and revenue drop, no order or customer counted
        ("O1", "C1", "P1", "dairy", TUE, -1, -5.0, 0.0, -5.0, False),
        # only a cancelled line: the day has a row with zeros (activity), no price
        ("O4", "C3", "P2", None, NEXT_MON, 4, 8.0, 0.0, 8.0, True),
    ]
    return spark.createDataFrame(rows, LINES).repartition(2)


def test_sales_daily_counts_orders_customers_returns_and_cancellations(spark: SparkSession) -> None:
    expected = spark.createDataFrame(
        [
            ("P1", "dairy", MON, 7, 7, 0, 31.0, 31.0 / 7, 35.0 / 7, 4.0 / 35.0, 3, 2),
            ("P1", "dairy", TUE, -1, 0, 1, -5.0, None, None, 0.0, 0, 0),
            ("P2", None, NEXT_MON, 0, 0, 0, 0.0, None, None, 0.0, 0, 0),
        ],
        MEASURES.format(period="date"),
    )
    actual = sales_daily(_lines(spark)).orderBy("product_id", "date")
    assert_approx_df_equality(actual, expected, precision=1e-9, ignore_nullable=True)


def test_sales_weekly_counts_a_customer_once_per_week(spark: SparkSession) -> None:
    expected = spark.createDataFrame(
        [
            ("P1", "dairy", MON, 6, 7, 1, 26.0, 31.0 / 7, 35.0 / 7, 4.0 / 35.0, 3, 2),
            ("P2", None, NEXT_MON, 0, 0, 0, 0.0, None, None, 0.0, 0, 0),
        ],
        MEASURES.format(period="week_start"),
    )
    actual = sales_weekly(_lines(spark)).orderBy("product_id", "week_start")
    assert_approx_df_equality(actual, expected, precision=1e-9, ignore_nullable=True)


def test_an_order_sold_over_two_days_counts_once_a_week(spark: SparkSession) -> None:
    rows = [
        ("O9", "C9", "P9", "bakery", MON, 1, 2.0, 0.0, 2.0, False),
        ("O9", "C9", "P9", "bakery", TUE, 2, 4.0, 0.0, 4.0, False),
    ]
    lines = spark.createDataFrame(rows, LINES)
    daily = {(r["date"], r["n_orders"], r["units"]) for r in sales_daily(lines).collect()}
    assert daily == {(MON, 1, 1), (TUE, 1, 2)}
    weekly = sales_weekly(lines).collect()
    assert [(r["week_start"], r["n_orders"], r["n_customers"], r["units"]) for r in weekly] == [
        (MON, 1, 1, 3)
    ]
