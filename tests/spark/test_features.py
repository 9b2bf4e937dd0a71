"""`salesopt.features` on small inline silver lines, against values worked out by hand."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import DataFrame, SparkSession

from salesopt import features

pytestmark = pytest.mark.spark
AS_OF = date(2025, 3, 10)
HALF_LIFE = 10.0
SCHEMA = (
    "customer_id string, product_id string, order_id string, order_date date, quantity int, "
    "net_amount double, category string, is_cancelled boolean"
)


def lines(spark: SparkSession) -> DataFrame:
    d = date.fromisoformat
    return spark.createDataFrame(
        [
            # C1: two orders, a return and a cancelled line
            ("C1", "P1", "O1", d("2025-03-01"), 2, 10.0, "dairy", False),
            ("C1", "P2", "O1", d("2025-03-01"), 1, 6.0, "bakery", False),
            ("C1", "P1", "O2", d("2025-03-08"), 1, 5.0, "dairy", False),
            ("C1", "P1", "O3", d("2025-03-09"), -1, -5.0, "dairy", False),
            ("C1", "P2", "O4", d("2025-03-09"), 3, 0.0, "bakery", True),
            # C2: only a return (no sale): no feature row
            ("C2", "P1", "O5", d("2025-03-02"), -1, -5.0, "dairy", False),
            # C3: a sale after as_of: not visible
            ("C3", "P1", "O6", d("2025-03-11"), 1, 5.0, "dairy", False),
        ],
        SCHEMA,
    )


def test_customer_features_by_hand(spark: SparkSession) -> None:
    rows = features.customer_features(lines(spark), AS_OF).collect()
    assert [r["customer_id"] for r in rows] == ["C1"]
    c1 = rows[0].asDict()
    assert c1["frequency"] == 2  # O1, O2 (the return and the cancelled line are no orders)
    assert c1["monetary"] == pytest.approx(16.0)  # 10 + 6 + 5 - 5; cancelled net is 0
    assert (c1["first_order_date"], c1["last_order_date"]) == (date(2025, 3, 1), date(2025, 3, 8))
    assert (c1["recency_days"], c1["tenure_days"]) == (2, 9)
    assert c1["avg_basket"] == pytest.approx(8.0)
    assert c1["avg_lines_per_order"] == pytest.approx(1.5)  # 3 sold lines / 2 orders
    assert c1["return_rate"] == pytest.approx(0.25)  # 1 returned of 4 sold units
    assert c1["orders_per_week"] == pytest.approx(2 / 9 * 7)
    # dairy 10 + 5 - 5 = 10, bakery 6 + 0 = 6: shares of the positive revenue
    assert c1["top_category"] == "dairy"
    assert c1["category_mix"] == {"bakery": pytest.approx(0.375), "dairy": pytest.approx(0.625)}


def test_interactions_strength_decays_and_returns_subtract(spark: SparkSession) -> None:
    rows = features.interactions(lines(spark), AS_OF, HALF_LIFE).collect()
    got = {(r["customer_id"], r["product_id"]): r.asDict() for r in rows}
    assert set(got) == {("C1", "P1"), ("C1", "P2")}  # C2 bought nothing, C3 after as_of
    p1 = got[("C1", "P1")]
    assert (p1["n_purchases"], p1["quantity"], p1["returned_units"]) == (2, 3, 1)
    decay = 0.5 ** (1 / HALF_LIFE)
    expected = 2 * decay**9 + 1 * decay**2 - 1 * decay**1  # ages 9, 2 and 1 days
    assert p1["strength"] == pytest.approx(expected, abs=1e-6)
    p2 = got[("C1", "P2")]
    assert (p2["n_purchases"], p2["quantity"], p2["last_purchase_date"]) == (
        1, 1, date(2025, 3, 1),
    )  # fmt: skip
    assert p2["strength"] == pytest.approx(decay**9, abs=1e-6)  # the cancelled line adds nothing


def test_snapshots_ignore_lines_after_as_of(spark: SparkSession) -> None:
    later = features.customer_features(lines(spark), date(2025, 3, 11))
    assert {r["customer_id"] for r in later.collect()} == {"C1", "C3"}
    before = features.interactions(lines(spark), date(2025, 2, 28), HALF_LIFE)
    assert before.isEmpty()


def test_with_run_adds_the_bookkeeping_columns(spark: SparkSession) -> None:
    out = features.with_run(spark.range(1), AS_OF, "r1").collect()[0]
    assert (out["as_of"], out["run_id"]) == (AS_OF, "r1")
