"""`salesopt.clean` on small inline data: parsing, typing, reason codes, amounts, versions."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from salesopt import clean

pytestmark = pytest.mark.spark
AS_OF = date(2025, 3, 3)
RAW_SCHEMA = "value string, _delivery_date date, _source_file string, _ingested_at timestamp, " \
    "_batch_id string"  # fmt: skip


def record(**overrides: object) -> str:
    fields: dict[str, object] = {
        "order_id": "O1", "line_no": 1, "customer_id": "C1", "product_id": "P1", "quantity": 2,
        "unit_price": 2.5, "discount": 0.5, "order_ts": "2025-03-03T10:00:00Z",
        "status": "completed", "channel": "web",
    }  # fmt: skip
    for key, value in overrides.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return json.dumps(fields)


def raw(spark: SparkSession, values: list[str], delivered: date | None = AS_OF) -> DataFrame:
    rows = [(v, delivered, "f.json", datetime(2025, 3, 3, 12), "b1") for v in values]
    return spark.createDataFrame(rows, RAW_SCHEMA)


def reasons(spark: SparkSession, values: list[str], delivered: date | None = AS_OF) -> list:
    typed = clean.with_typed_fields(clean.parse_records(raw(spark, values, delivered)))
    reasoned = clean.with_reason(typed, AS_OF, max_future_days=1, late_window_days=30)
    return [r["_reason"] for r in reasoned.select("_reason").collect()]


def test_each_reason_code_in_its_order(spark: SparkSession) -> None:
    cases = {
        "{not json": "malformed_record",
        '[{"order_id": "O1"}]': "malformed_record",  # JSON, but not an object
        '"O1"': "malformed_record",
        "\t\t": "malformed_record",  # blank but for tabs
        record(customer_id=None): "missing_required",
        record(order_id=""): "missing_required",
        record(quantity="two"): "wrong_type",
        record(status="lost"): "wrong_type",
        record(unit_price=0): "invalid_price",
        record(unit_price=-1, quantity=0): "invalid_price",  # the first reason wins
        record(quantity=0): "zero_quantity",
        record(order_ts="2025-03-05T10:00:00Z"): "future_timestamp",  # > delivery + 1 day
        record(order_ts="2025-01-31T10:00:00Z"): "late_beyond_window",  # > 30 days before
        record(order_ts="2025-02-01T10:00:00Z"): None,  # 30 days before: within the window
        record(order_ts="2025-03-04 23:00:00"): None,  # another timestamp spelling
        record(quantity=-1): None,  # a return is valid
        record(discount=None, status=None, channel=None): None,  # optional fields absent
    }
    assert reasons(spark, list(cases)) == list(cases.values())


def test_future_is_measured_from_as_of_without_a_delivery_date(spark: SparkSession) -> None:
    late = record(order_ts="2025-03-05T10:00:00Z")
    assert reasons(spark, [late], delivered=None) == ["future_timestamp"]
    assert reasons(spark, [record(order_ts="2024-01-01T10:00:00Z")], delivered=None) == [None]


def test_typed_fields_and_rescued_unknown_fields(spark: SparkSession) -> None:
    parsed = clean.parse_records(raw(spark, [record(loyalty="gold"), record(quantity=" 3 ")]))
    typed = clean.with_typed_fields(parsed).orderBy("quantity").collect()
    assert json.loads(typed[0]["_rescued_data"]) == {"loyalty": "gold"}
    assert typed[1]["_rescued_data"] is None
    assert typed[1]["quantity"] == 3 and not typed[1]["_type_error"]  # trimmed, then typed
    assert typed[0]["order_ts"] == datetime(2025, 3, 3, 10)
    assert typed[0]["unit_price"] == 2.5


def test_csv_rows_drop_the_header_and_flag_short_rows(spark: SparkSession) -> None:
    header = ",".join(clean.FIELD_TYPES)
    good = "O1,1,C1,P1,2,2.5,0,EUR,2025-03-03T10:00:00Z,,completed,web,S7,1"
    older = "O3,1,C1,P1,1,2.5,0,EUR,2025-03-03T10:00:00Z,,completed,web"  # before store_id, promo
    typed = clean.with_typed_fields(
        clean.parse_records(raw(spark, [header, good, "O2,1,C1", older]), fmt="csv")
    )
    rows = typed.select("order_id", "quantity", "store_id", "promo", "_parsed").collect()
    assert [tuple(r) for r in rows] == [
        ("O1", 2, "S7", "1", True), (None, None, None, None, False), ("O3", 1, None, None, True),
    ]  # fmt: skip


def test_store_and_promotion_fields(spark: SparkSession) -> None:
    values = [
        record(line_no=1, store_id="S1", promo="PR-2025-17"),  # a promotion id
        record(line_no=2, store_id="S2", promo="0"),
        record(line_no=3, promo="FALSE"),
        record(line_no=4, promo=True),  # a JSON boolean
        record(line_no=5),  # no promo field, a discount: on promotion
        record(line_no=6, discount=None),  # neither: not
        record(line_no=7, promo="no", discount=0.5),  # the flag wins over the discount
    ]
    typed = clean.with_typed_fields(clean.parse_records(raw(spark, values)))
    valid = clean.with_product_check(
        clean.with_reason(typed, AS_OF, 1, 30),
        spark.createDataFrame([("P1", "dairy")], "product_id string, category string"),
        "quarantine",
    )
    out = clean.normalised(valid).orderBy("line_no").select("store_id", "promo").collect()
    assert [tuple(r) for r in out] == [
        ("S1", True), ("S2", False), (None, False), (None, True), (None, True), (None, False),
        (None, False),
    ]  # fmt: skip


def test_unknown_products_by_policy(spark: SparkSession) -> None:
    products = spark.createDataFrame([("P1", "dairy")], "product_id string, category string")
    typed = clean.with_typed_fields(
        clean.parse_records(raw(spark, [record(), record(product_id="P9")]))
    )
    lines = clean.with_reason(typed, AS_OF, 1, 30)
    quarantined = clean.with_product_check(lines, products, "quarantine")
    got = {r["product_id"]: (r["_reason"], r["category"]) for r in quarantined.collect()}
    assert got == {"P1": (None, "dairy"), "P9": ("unknown_product", "unknown")}
    flagged = clean.with_product_check(lines, products, "flag")
    assert {r["_reason"] for r in flagged.collect()} == {None}


def test_normalised_amounts_status_and_flags(spark: SparkSession) -> None:
    values = [
        record(),
        record(line_no=2, status="cancelled"),
        record(line_no=3, quantity=-1, discount=None),
    ]
    typed = clean.with_typed_fields(clean.parse_records(raw(spark, values)))
    valid = clean.with_product_check(
        clean.with_reason(typed, AS_OF, 1, 30),
        spark.createDataFrame([("P1", "dairy")], "product_id string, category string"),
        "quarantine",
    )
    out = clean.normalised(valid).select(
        "line_no", "gross_amount", "net_amount", "status", "is_return", "is_cancelled",
        "order_date", "updated_at",
    )  # fmt: skip
    expected = [
        (1, 5.0, 4.5, "completed", False, False, AS_OF, datetime(2025, 3, 3, 10)),
        (2, 5.0, 0.0, "cancelled", False, True, AS_OF, datetime(2025, 3, 3, 10)),
        (3, -2.5, -2.5, "returned", True, False, AS_OF, datetime(2025, 3, 3, 10)),
    ]
    assertDataFrameEqual(out, spark.createDataFrame(expected, out.schema))


def test_latest_version_wins_then_latest_ingest(spark: SparkSession) -> None:
    schema = (
        "order_id string, line_no int, updated_at timestamp, _ingested_at timestamp, "
        "_source_file string, quantity int, unit_price double, status string, discount double"
    )
    t1, t2 = datetime(2025, 3, 3, 10), datetime(2025, 3, 4, 10)
    rows = [
        ("O1", 1, t1, t1, "a", 1, 2.5, "completed", 0.0),
        ("O1", 1, t2, t1, "a", 4, 2.5, "completed", 0.0),  # newer version: wins
        ("O2", 1, t1, t1, "a", 1, 2.5, "completed", 0.0),
        ("O2", 1, t1, t2, "b", 2, 2.5, "completed", 0.0),  # same version, ingested later: wins
    ]
    ranked = clean.rank_versions(spark.createDataFrame(rows, schema))
    winners = ranked.where(F.col("_version_rank") == 1).select("order_id", "quantity")
    assertDataFrameEqual(winners, spark.createDataFrame([("O1", 4), ("O2", 2)], winners.schema))


def test_quarantine_rows_number_identical_lines(spark: SparkSession) -> None:
    values = ["{bad", "{bad", "{worse", record(quantity=20000)]
    rejected = clean.with_typed_fields(clean.parse_records(raw(spark, values))).withColumn(
        "_reason", F.when(F.col("_parsed"), "rule:big").otherwise("malformed_record")
    )
    rows = clean.quarantine_rows(rejected, AS_OF, "r1").collect()
    assert sorted((r["raw"], r["_dup_index"]) for r in rows) == [
        (values[3], 1), ("{bad", 1), ("{bad", 2), ("{worse", 1),
    ]  # fmt: skip
    assert {r["reason"] for r in rows} == {"malformed_record", "rule:big"}
    # a readable line keeps its product, date and quantity (the elasticity's censoring check)
    parsed = {(r["product_id"], r["order_date"], r["quantity"]) for r in rows}
    assert parsed == {("P1", AS_OF, 20000), (None, None, None)}
    assert {(r["as_of"], r["run_id"]) for r in rows} == {(AS_OF, "r1")}


def test_timestamp_spellings_are_read_in_utc(spark: SparkSession) -> None:
    spellings = ["2025-03-03T10:00:00Z", "2025-03-03 10:00:00", "2025-03-03T12:00:00+02:00",
                 "2025-03-03T10:00:00.000Z", "03/03/2025 10:00"]  # fmt: skip
    typed = clean.with_typed_fields(
        clean.parse_records(raw(spark, [record(order_ts=ts) for ts in spellings]))
    ).collect()
    by_text = {r["_raw_order_ts"]: (r["order_ts"], r["_type_error"]) for r in typed}
    assert by_text == {
        **{ts: (datetime(2025, 3, 3, 10), False) for ts in spellings[:4]},
        "03/03/2025 10:00": (None, True),  # not ISO 8601: wrong_type, never a guessed date
    }
