"""`Warehouse.write_slice`: a slice known to be new is appended, others replaced, none doubled."""

from __future__ import annotations

from datetime import date

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from salesopt.io.tables import Warehouse


def _last_commit(spark: SparkSession, wh: Warehouse) -> dict:
    row = DeltaTable.forPath(spark, wh.path("gold", "t")).history(1).first()
    return {"mode": row["operationParameters"]["mode"], "meta": row["userMetadata"]}


def test_a_new_slice_is_appended_and_an_existing_one_replaced(
    spark: SparkSession, settings_for
) -> None:
    wh = Warehouse.from_settings(settings_for())
    d1, d2, d3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)

    def rows(as_of: date, *values: int):
        return spark.createDataFrame([(as_of, v) for v in values], "as_of date, v int")

    assert wh.write_slice(rows(d1, 1, 2), "gold", "t", d1, user_metadata="one", new=True) == 0
    assert _last_commit(spark, wh) == {"mode": "Append", "meta": "one"}  # created by the append
    assert wh.write_slice(rows(d2, 3), "gold", "t", d2, user_metadata="two", new=True) == 1
    assert _last_commit(spark, wh) == {"mode": "Append", "meta": "two"}
    # a rerun for d1: its slice is replaced, d2 is untouched
    assert wh.write_slice(rows(d1, 5), "gold", "t", d1, user_metadata="three") == 2
    assert _last_commit(spark, wh) == {"mode": "Overwrite", "meta": "three"}
    # without the hint a new date is written with replaceWhere too
    assert wh.write_slice(rows(d3, 7), "gold", "t", d3) == 3
    assert _last_commit(spark, wh) == {"mode": "Overwrite", "meta": None}
    got = sorted((r["as_of"], r["v"]) for r in wh.read(spark, "gold", "t").collect())
    assert got == [(d1, 5), (d2, 3), (d3, 7)]
    detail = DeltaTable.forPath(spark, wh.path("gold", "t")).detail().first()
    assert detail["partitionColumns"] == ["as_of"]
