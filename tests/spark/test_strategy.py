"""The strategy stage on the generator's planted lines and planted segments, two as_of refreshes:
the response rows, the playbook (evidence or a reason), and KPIs checked against the earlier
playbook, computed again here from the lines."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt.context import StageContext
from salesopt.datagen import planted_lines
from salesopt.datagen.entities import SEGMENTS
from salesopt.errors import InputError
from salesopt.io.tables import Warehouse
from salesopt.strategy import response as rs
from salesopt.strategy import stage
from tests.conftest import SMALL_AS_OF

pytestmark = pytest.mark.spark

D1, D2 = SMALL_AS_OF - timedelta(days=28), SMALL_AS_OF
SEGMENT_IDS = {name: i for i, name in enumerate(SEGMENTS)}


def planted_segments(spark: SparkSession, truth: str, as_of: date) -> DataFrame:
    """gold/customer_segments-like rows: each customer's planted segment."""
    ids = F.create_map(*[x for name, i in SEGMENT_IDS.items() for x in (F.lit(name), F.lit(i))])
    return spark.read.parquet(f"{truth}/customers").select(
        "customer_id",
        F.element_at(ids, F.col("segment")).cast("int").alias("segment_id"),
        F.col("segment").alias("segment_label"),
        F.lit(None).cast("double").alias("distance"),
        F.lit(as_of).alias("as_of"),
    )


def profiles(segments: DataFrame, as_of: date) -> DataFrame:
    return (
        segments.groupBy("segment_id", "segment_label")
        .agg(F.count("*").alias("customers"))
        .withColumn("yearly_revenue", F.col("customers") * 100.0)
        .withColumn("as_of", F.lit(as_of))
    )


@pytest.fixture(scope="module")
def strategy_warehouse(spark: SparkSession, small_generated, tmp_path_factory, base_settings):
    out, gen, _ = small_generated
    root = tmp_path_factory.mktemp("strategy")
    settings = base_settings.with_overrides(
        paths={"warehouse": str(root / "warehouse"), "landing": str(out / "landing")}
    )
    wh = Warehouse.from_settings(settings)
    wh.overwrite(planted_lines(spark, gen), "silver", "order_lines")
    products = spark.read.parquet(f"{out}/truth/products").select(
        "product_id", "category", "unit_cost"
    )
    wh.overwrite(products, "silver", "products")
    results = {}
    for as_of, run_id in ((D1, "r1"), (D2, "r2")):
        segments = planted_segments(spark, f"{out}/truth", as_of)
        wh.write_slice(segments, "gold", "customer_segments", as_of)
        wh.write_slice(profiles(segments, as_of), "gold", "segment_profiles", as_of)
        results[as_of] = stage.run(StageContext(spark, settings, wh, as_of, run_id))
    return spark, settings, wh, results


def test_every_segment_gets_response_rows_with_n_and_status(strategy_warehouse) -> None:
    spark, _s, wh, results = strategy_warehouse
    rows = wh.read_as_of(spark, "gold", "segment_response", D2).collect()
    by = {(r["segment_label"], r["metric"], r["channel"]): r for r in rows}
    for name in SEGMENTS:
        price = by[(name, "price_elasticity", None)]
        assert price["status"] in {"ok", "too_few_obs", "insufficient_variation", "implausible"}
        assert price["message"]
        for metric in ("promo_lift", "promo_uplift", "basket_size", "days_between_orders"):
            assert (name, metric, None) in by
    champions = by[("champions", "price_elasticity", None)]
    assert champions["status"] == "ok" and champions["ci_high"] < 0, champions
    assert champions["ci_low"] <= champions["estimate"] <= champions["ci_high"]
    # channel shares of one segment add up to 1 (orders and revenue alike)
    for metric in ("channel_order_share", "channel_revenue_share"):
        total = sum(
            r["estimate"] for r in rows if r["segment_label"] == "loyal" and r["metric"] == metric
        )
        assert total == pytest.approx(1.0)
    # planted: champions order 60 % through the app, loyal 70 % in store
    app = by[("champions", "channel_order_share", "app")]
    assert app["ci_low"] <= 0.6 <= app["ci_high"], app
    assert by[("lapsed", "reactivation_rate", None)]["n"] > 0
    assert results[D2].summary["segments"] == len(SEGMENTS)


def test_the_playbook_acts_on_evidence_or_says_why_not(strategy_warehouse) -> None:
    spark, _s, wh, _r = strategy_warehouse
    book = wh.read_as_of(spark, "gold", "segment_playbook", D2).collect()
    by = {(r["segment_label"], r["action"], r["kpi"]): r for r in book}
    for name in SEGMENTS:
        for action in ("no_discount", "promotion", "channel"):
            assert any(k[:2] == (name, action) for k in by), (name, action)
    assert {r["status"] for r in book} <= {
        "recommended", "not_recommended", "insufficient_evidence", "tracked"
    }  # fmt: skip
    assert all(r["reason"] for r in book)
    # win-back only for lapsed (and at-risk) segments, with the revenue at stake in its reason
    assert {r["segment_label"] for r in book if r["action"] == "win_back"} == {"lapsed"}
    back = next(r for r in book if r["action"] == "win_back")
    assert "a year at stake" in back["reason"]
    # champions are reached through the app (planted 60 % of their orders)
    champions = by[("champions", "channel", "orders_per_day")]
    assert champions["status"] == "recommended" and champions["detail"] == "reach through app"
    # a recommended action carries its expected effect; a refused one none
    for r in book:
        if r["status"] == "insufficient_evidence":
            assert r["effect_low"] is None and r["effect_high"] is None


def test_kpis_check_the_earlier_playbook(strategy_warehouse) -> None:
    spark, _s, wh, results = strategy_warehouse
    assert wh.read_as_of(spark, "gold", "segment_kpis", D1).count() == 0  # nothing to check yet
    kpis = wh.read_as_of(spark, "gold", "segment_kpis", D2).collect()
    assert results[D2].summary["kpis_since"] == D1.isoformat()
    assert {r["since_as_of"] for r in kpis} == {D1} and {r["days"] for r in kpis} == {28}
    revenue = {r["segment_label"]: r for r in kpis if r["kpi"] == "revenue_per_day"}
    assert set(revenue) == set(SEGMENTS)
    # computed again: the D1 cohort's net revenue in (D1, D2] per day
    lines = wh.read(spark, "silver", "order_lines").where(
        (F.col("order_date") > F.lit(D1)) & (F.col("order_date") <= F.lit(D2))
    )
    cohort = wh.read_as_of(spark, "gold", "customer_segments", D1)
    expected = {
        r["segment_label"]: r["revenue"] / 28
        for r in lines.join(cohort, "customer_id")
        .groupBy("segment_label")
        .agg(F.sum("net_amount").alias("revenue"))
        .collect()
    }
    book = {
        (r["segment_label"], r["kpi"]): r
        for r in wh.read_as_of(spark, "gold", "segment_playbook", D1).collect()
        if r["action"] == "monitor"
    }
    for name, row in revenue.items():
        assert row["realised"] == pytest.approx(expected.get(name, 0.0))
        # 28 days average out: the range narrows by sqrt(7 / 28) around the expectation
        planned = book[(name, "revenue_per_day")]
        assert row["expected_high"] - planned["expected"] == pytest.approx(
            (planned["expected_high"] - planned["expected"]) / 2
        )
        low, high = row["expected_low"], row["expected_high"]
        verdict = (
            "above" if row["realised"] > high else "below" if row["realised"] < low else "within"
        )
        assert row["verdict"] == verdict
    # planted lapsed customers never come back: none of the quiet ones ordered again
    lapsed = [r for r in kpis if r["segment_label"] == "lapsed" and r["kpi"] == "reactivation_rate"]
    assert len(lapsed) == 1 and lapsed[0]["realised"] == 0.0 and lapsed[0]["verdict"] == "below"
    assert 0 < lapsed[0]["cohort_customers"] <= revenue["lapsed"]["cohort_customers"]


def test_a_rerun_of_an_as_of_gives_the_same_tables(strategy_warehouse) -> None:
    spark, settings, wh, _r = strategy_warehouse
    names = ("segment_response", "segment_playbook", "segment_kpis")

    def rows(name: str) -> list:
        table = wh.read_as_of(spark, "gold", name, D2).drop("run_id")
        return sorted(map(tuple, table.collect()), key=repr)

    before = {name: rows(name) for name in names}
    stage.run(StageContext(spark, settings, wh, D2, "r3"))
    assert {name: rows(name) for name in names} == before


def test_without_segments_it_says_run_segment_first(spark: SparkSession, settings_for) -> None:
    settings = settings_for()
    wh = Warehouse.from_settings(settings)
    with pytest.raises(InputError, match="run the segment stage before strategy"):
        stage.run(StageContext(spark, settings, wh, D2, "r"))


def test_base_reactivation_counts_only_customers_quiet_for_a_window(spark: SparkSession) -> None:
    """A: quiet 90 days before as_of - 90, back since; B: quiet, not back; C: ordered inside the
    quiet window (not quiet); D: no order before as_of - 90; E: a cancelled order only."""
    as_of = date(2025, 6, 30)
    orders = [("A", -200), ("A", -10), ("B", -200), ("C", -200), ("C", -100), ("C", -5),
              ("D", -5), ("E", -200)]  # fmt: skip
    rows = [(c, as_of + timedelta(days=d), 1, c == "E") for c, d in orders]
    lines = spark.createDataFrame(
        rows, "customer_id string, order_date date, quantity int, is_cancelled boolean"
    )
    rate, low, high, n = rs.reactivation_rate(lines, as_of, 90, 0.95)
    assert (rate, n) == (0.5, 2)
    assert low is not None and high is not None and low < 0.5 < high
