"""Generator: determinism for a seed, planted structure, and every dirt kind present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt.config import GenerateSettings
from salesopt.datagen import generate
from salesopt.datagen.orders import DIRT_KINDS

pytestmark = pytest.mark.spark
TINY = {"customers": 120, "products": 12, "days": 60, "start_date": "2024-03-04", "dirty_rate": 0.2}


def _landing(spark: SparkSession, out: Path) -> DataFrame:
    return spark.read.text(str(out / "landing" / "orders"))


def _same(a: DataFrame, b: DataFrame) -> bool:
    return a.exceptAll(b).isEmpty() and b.exceptAll(a).isEmpty()


@pytest.mark.slow  # three generations: make test-e2e
def test_same_seed_same_data_other_seed_other_data(spark: SparkSession, tmp_path: Path) -> None:
    gen = GenerateSettings.model_validate({**TINY, "seed": 5})
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(spark, str(first), gen)
    generate(spark, str(second), gen)
    generate(spark, str(other), gen.model_copy(update={"seed": 6}))
    assert _landing(spark, first).count() > 500
    assert _same(_landing(spark, first), _landing(spark, second))
    for name in ("customers", "products", "dirt", "price_calendar"):
        truth_a = spark.read.parquet(str(first / "truth" / name))
        assert _same(truth_a, spark.read.parquet(str(second / "truth" / name))), name
    assert not _same(_landing(spark, first), _landing(spark, other))


def test_planted_segments_differ_in_behaviour(spark: SparkSession, small_generated) -> None:
    out, gen, _ = small_generated
    truth = spark.read.parquet(str(out / "truth" / "customers"))
    shares = {
        r["segment"]: r["count"] / gen.customers for r in truth.groupBy("segment").count().collect()
    }
    assert set(shares) == {"champions", "loyal", "occasional", "lapsed", "new"}
    assert 0.05 < shares["champions"] < 0.16 and 0.27 < shares["occasional"] < 0.43
    rates = {
        r["segment"]: r["rate"]
        for r in truth.groupBy("segment").agg(F.avg("orders_per_week").alias("rate")).collect()
    }
    assert rates["champions"] > 2 * rates["loyal"] > 4 * rates["occasional"]
    lapsed = truth.where("segment = 'lapsed'").agg(F.max("active_end")).first()[0]
    assert lapsed < 0.7 * gen.days


def test_every_dirt_kind_is_planted_at_about_the_rate(spark: SparkSession, small_generated) -> None:
    out, gen, summary = small_generated
    dirt = spark.read.parquet(str(out / "truth" / "dirt"))
    counts = {r["dirt_kind"]: r["count"] for r in dirt.groupBy("dirt_kind").count().collect()}
    assert set(counts) == {*DIRT_KINDS, "return"}
    planted = sum(v for k, v in counts.items() if k != "return")
    assert planted == pytest.approx(gen.dirty_rate * summary.clean_lines, rel=0.15)


def test_landing_lines_follow_the_contract(spark: SparkSession, small_generated) -> None:
    out, _, summary = small_generated
    lines = _landing(spark, out)
    parsed = lines.select(F.from_json("value", "map<string,string>").alias("m"))
    malformed = parsed.where(F.col("m").isNull()).count()
    dirt = spark.read.parquet(str(out / "truth" / "dirt"))
    assert malformed == dirt.where("dirt_kind = 'malformed'").count()
    sample = json.loads(lines.where(~F.col("value").contains("coupon_code")).first()["value"])
    assert set(sample) >= {
        "order_id",
        "line_no",
        "customer_id",
        "product_id",
        "quantity",
        "unit_price",
    }
    returns = parsed.where(F.col("m")["status"] == "returned")
    assert returns.where(F.col("m")["quantity"].cast("int") >= 0).count() == 0
    assert returns.count() == dirt.where("dirt_kind = 'return'").count()
    drift = parsed.where(F.col("m")["coupon_code"].isNotNull()).count()
    assert drift > 0
    late_files = [p for p in (out / "landing" / "orders").iterdir() if p.name.endswith("_late")]
    assert late_files
    assert summary.landing_lines == lines.count()


def test_reference_files_carry_pii_and_prices(spark: SparkSession, small_generated) -> None:
    out, gen, _ = small_generated
    customers = spark.read.option("header", "true").csv(str(out / "landing" / "customers"))
    products = spark.read.option("header", "true").csv(str(out / "landing" / "products"))
    assert {"name", "email", "phone"} <= set(customers.columns)
    assert customers.count() == gen.customers
    assert products.count() == gen.products
    bad_cost = products.where(
        F.col("unit_cost").cast("double") >= F.col("list_price").cast("double")
    )
    assert bad_cost.count() == 0
