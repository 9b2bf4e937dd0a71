"""`Warehouse.write_slice`: a slice known to be new is appended, others replaced, none doubled.
The quarantine write: once per batch, a replay writes nothing."""

from __future__ import annotations

import logging
from datetime import date, datetime

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from salesopt import silver
from salesopt.context import StageContext
from salesopt.io.tables import Warehouse


def _last_commit(spark: SparkSession, wh: Warehouse) -> dict:
    row = DeltaTable.forPath(spark, wh.path("gold", "t")).history(1).first()
    return {"mode": row["operationParameters"]["mode"], "meta": row["userMetadata"]}


def _last_operation(spark: SparkSession, wh: Warehouse, layer: str, name: str) -> str:
    return DeltaTable.forPath(spark, wh.path(layer, name)).history(1).first()["operation"]


def test_a_slice_is_written_with_replace_where_and_a_rerun_replaces_it(
    spark: SparkSession, settings_for
) -> None:
    wh = Warehouse.from_settings(settings_for())
    d1, d2, d3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)

    def rows(as_of: date, *values: int):
        return spark.createDataFrame([(as_of, v) for v in values], "as_of date, v int")

    assert wh.write_slice(rows(d1, 1, 2), "gold", "t", d1, user_metadata="one") == 0
    assert _last_commit(spark, wh) == {"mode": "Overwrite", "meta": "one"}
    assert wh.write_slice(rows(d2, 3), "gold", "t", d2, user_metadata="two") == 1
    assert _last_commit(spark, wh) == {"mode": "Overwrite", "meta": "two"}
    # a rerun for d1: its slice is replaced, d2 is untouched
    assert wh.write_slice(rows(d1, 5), "gold", "t", d1, user_metadata="three") == 2
    assert _last_commit(spark, wh) == {"mode": "Overwrite", "meta": "three"}
    assert wh.write_slice(rows(d3, 7), "gold", "t", d3) == 3
    assert _last_commit(spark, wh) == {"mode": "Overwrite", "meta": None}
    got = sorted((r["as_of"], r["v"]) for r in wh.read(spark, "gold", "t").collect())
    assert got == [(d1, 5), (d2, 3), (d3, 7)]
    detail = DeltaTable.forPath(spark, wh.path("gold", "t")).detail().first()
    assert detail["partitionColumns"] == ["as_of"]


def test_quarantine_is_written_once_per_batch(spark: SparkSession, settings_for, caplog) -> None:
    """A replayed batch finds its rejected lines and writes nothing; a new batch appends."""
    settings = settings_for()
    wh = Warehouse.from_settings(settings)
    ctx = StageContext(spark, settings, wh, date(2025, 3, 1), "run-1")
    schema = (
        "value string, _reason string, _source_file string, _batch_id string, "
        "_ingested_at timestamp, product_id string, order_ts timestamp, quantity int"
    )
    at = datetime(2025, 3, 1, 6)

    def rejects(batch: str, *values: str):
        rows = [(v, "unparseable", f"{batch}.jsonl", batch, at, None, None, None) for v in values]
        return spark.createDataFrame(rows, schema)

    def held() -> list[tuple[str, str, int]]:
        rows = wh.read(spark, "quarantine", "orders_rejected").collect()
        return sorted((r["_batch_id"], r["raw"], r["_dup_index"]) for r in rows)

    silver._write_quarantine(ctx, rejects("b1", "x", "x", "y"), "b1", 3)
    first = held()
    assert first == [("b1", "x", 1), ("b1", "x", 2), ("b1", "y", 1)]
    with caplog.at_level(logging.WARNING, logger="salesopt.silver"):
        silver._write_quarantine(ctx, rejects("b1", "x", "x", "y"), "b1", 3)  # a replay
        assert held() == first
        assert "quarantine already holds its 3 rejected lines" in caplog.text
        assert "this attempt rejected" not in caplog.text
        silver._write_quarantine(ctx, rejects("b1", "x"), "b1", 1)  # a replay that differs
        assert held() == first
        assert "this attempt rejected 1 lines, the earlier one 3" in caplog.text
    versions = wh.version(spark, "quarantine", "orders_rejected")
    silver._write_quarantine(ctx, rejects("b2").limit(0), "b2", 0)  # nothing rejected
    assert wh.version(spark, "quarantine", "orders_rejected") == versions  # no commit
    silver._write_quarantine(ctx, rejects("b2", "z"), "b2", 1)
    assert held() == [*first, ("b2", "z", 1)]
    assert _last_operation(spark, wh, "quarantine", "orders_rejected") == "WRITE"  # no MERGE
