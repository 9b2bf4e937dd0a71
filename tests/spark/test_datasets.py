"""The Complete Journey mapping onto the source contract, on a tiny file shaped like the package's
parquet (INT96 transaction times as shipped, or pandas' current `TIMESTAMP(NANOS)`; int64 keys)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from salesopt.datasets import prepare_completejourney

pytestmark = pytest.mark.spark


def write_source(folder: Path, int96: bool) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "household_id": [900, 900, 1228],
            "store_id": [330, 330, 406],
            "basket_id": [31198570044, 31198570044, 31198655051],
            "product_id": [1095275, 1004906, 1095275],
            "quantity": [2, 1, 0],
            "sales_value": [1.0, 2.5, 0.0],
            "retail_disc": [0.5, 0.0, 0.0],
            "coupon_disc": [0.0, 0.0, 0.0],
            "coupon_match_disc": [0.1, 0.0, 0.0],
            "week": [1, 1, 2],
            "transaction_timestamp": pd.to_datetime(
                ["2017-01-01 11:53:26", "2017-01-01 11:53:26", "2017-01-09 08:00:00.123456789"],
                format="ISO8601",
            ),
        }
    ).to_parquet(folder / "transactions.parquet", use_deprecated_int96_timestamps=int96)
    pd.DataFrame(
        {
            "product_id": [1095275, 1004906],
            "manufacturer_id": [2, 69],
            "department": ["PASTRY", None],
            "brand": ["National", "Private"],
            "product_category": ["ROLLS", "BAKED"],
            "product_type": ["ROLLS: BAGELS", "BREAD"],
            "package_size": ["4 OZ", None],
        }
    ).to_parquet(folder / "products.parquet")


@pytest.mark.parametrize("int96", [True, False], ids=["int96-as-shipped", "timestamp-nanos"])
def test_complete_journey_maps_onto_the_source_contract(
    spark: SparkSession, tmp_path: Path, int96: bool
) -> None:
    source = tmp_path / "cj"
    write_source(source, int96)
    assert pd.read_parquet(source / "transactions.parquet")["transaction_timestamp"].dtype == (
        "datetime64[ns]"
    )
    landing = tmp_path / "landing"
    last = prepare_completejourney(spark, landing, source)
    assert last == date(2017, 1, 9)
    by_day = {
        folder.name: [
            json.loads(text)
            for part in sorted(folder.glob("part-*"))
            for text in part.read_text().splitlines()
        ]
        for folder in sorted((landing / "orders").glob("batch_date=*"))
    }
    assert sorted(by_day) == ["batch_date=2017-01-01", "batch_date=2017-01-09"]
    first = sorted(by_day["batch_date=2017-01-01"], key=lambda r: r["line_no"])
    assert [(r["order_id"], r["line_no"], r["product_id"]) for r in first] == [
        ("31198570044", 1, "1004906"),
        ("31198570044", 2, "1095275"),
    ]
    bagels = first[1]
    assert bagels["customer_id"] == "H900"
    assert bagels["quantity"] == 2
    assert bagels["unit_price"] == pytest.approx((1.0 + 0.5 + 0.1) / 2)
    assert bagels["discount"] == pytest.approx(0.6)
    assert bagels["order_ts"] == "2017-01-01T11:53:26Z"
    assert (bagels["status"], bagels["channel"]) == ("completed", "store")
    (zero,) = by_day["batch_date=2017-01-09"]
    assert zero["order_ts"] == "2017-01-09T08:00:00Z"
    assert zero["quantity"] == 0 and "unit_price" not in zero  # no unit price: quarantined
    products = spark.read.option("header", "true").csv(str(landing / "products"))
    assert {(r["product_id"], r["category"]) for r in products.collect()} == {
        ("1095275", "pastry"),
        ("1004906", "unknown"),
    }
    customers = spark.read.option("header", "true").csv(str(landing / "customers"))
    assert sorted(r["customer_id"] for r in customers.collect()) == ["H1228", "H900"]
