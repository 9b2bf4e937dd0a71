"""Gold snapshot tables are plain: `WHERE as_of = D` returns the complete snapshot for D.

Checked with delta-rs (the `deltalake` package) as an independent reader, after daily refreshes,
a rerun and a backfill, against the features computed directly from silver as the run saw it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder
from pyspark.sql import DataFrame, SparkSession

from salesopt import features
from salesopt.io.tables import Warehouse
from salesopt.pipeline import WAREHOUSE_STAGES, refresh
from tests.spark.test_refresh_edges import line, write_landing

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
D1, D_MID, D2 = date(2025, 3, 3), date(2025, 3, 5), date(2025, 3, 8)
HALF_LIFE = 90.0
SNAPSHOTS = ("customer_features", "interactions")
RESENT = "2025-03-07T09:00:00Z"


def _plain_sql(wh: Warehouse, name: str, as_of: date) -> pd.DataFrame:
    """The rows a SQL user gets from delta-rs: `SELECT * FROM t WHERE as_of = DATE 'D'`."""
    table = DeltaTable(wh.path("gold", name))
    sql = f"SELECT * FROM t WHERE as_of = DATE '{as_of.isoformat()}'"
    return pa.table(QueryBuilder().register("t", table).execute(sql).read_all()).to_pandas()


def _expected(lines: DataFrame, name: str, as_of: date) -> pd.DataFrame:
    frame = (
        features.customer_features(lines, as_of)
        if name == "customer_features"
        else features.interactions(lines, as_of, HALF_LIFE)
    )
    return frame.toPandas()


def _same_rows(got: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    cols = [c for c in expected.columns if c != "category_mix"]  # maps compare as dicts below
    a = got[cols].sort_values(keys).reset_index(drop=True)
    b = expected[cols].sort_values(keys).reset_index(drop=True)
    for c in ("first_order_date", "last_order_date", "first_purchase_date", "last_purchase_date"):
        if c in a:
            a[c] = pd.to_datetime(a[c]).dt.date
            b[c] = pd.to_datetime(b[c]).dt.date
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, rtol=1e-9)
    if "category_mix" in expected:
        mixes = dict(zip(got["customer_id"], got["category_mix"], strict=True))
        for cid, mix in zip(expected["customer_id"], expected["category_mix"], strict=True):
            assert dict(mixes[cid]) == pytest.approx(dict(mix))


@pytest.fixture(scope="module")
def daily(spark: SparkSession, base_settings, tmp_path_factory) -> dict:
    """Two daily refreshes, a rerun of the second and a backfill between them (core stages)."""
    root: Path = tmp_path_factory.mktemp("daily")
    settings = base_settings.with_overrides(
        paths={"warehouse": str(root / "warehouse"), "landing": str(root / "landing")},
        clean={"max_future_days": 5},
    )
    wh = Warehouse.from_settings(settings)
    write_landing(
        root / "landing",
        {
            "batch_date=2025-03-03/a.json": [
                line("O1", 1, 2, customer_id="C1", product_id="P1"),
                line("O2", 1, 1, customer_id="C2", product_id="P1"),
                line("O3", 1, 4, customer_id="C3", product_id="P2"),
                # dated after D1: invisible at D1, part of the snapshot at D2
                line("O9", 1, 1, ts="2025-03-06T10:00:00Z", customer_id="C3", product_id="P1"),
            ]
        },
    )
    refresh(spark, settings, D1, WAREHOUSE_STAGES)
    silver_d1 = wh.read(spark, "silver", "order_lines").collect()  # silver as the D1 run saw it
    write_landing(
        root / "landing",
        {
            "batch_date=2025-03-07/b.json": [
                line("O4", 1, 3, ts="2025-03-07T08:00:00Z", customer_id="C1", product_id="P2"),
                # C2's only line re-sent for another product (a correction)
                line("O2", 1, 1, updated_at=RESENT, customer_id="C2", product_id="P2"),
                # a late line dated before D1
                line("O6", 1, 2, ts="2025-03-02T10:00:00Z", customer_id="C1", product_id="P1"),
            ]
        },
    )
    second = refresh(spark, settings, D2, WAREHOUSE_STAGES)
    rerun = refresh(spark, settings, D2, WAREHOUSE_STAGES)
    backfill = refresh(spark, settings, D_MID, WAREHOUSE_STAGES)
    schema = wh.read(spark, "silver", "order_lines").schema
    return {
        "spark": spark, "wh": wh, "second": second, "rerun": rerun, "backfill": backfill,
        "silver_d1": spark.createDataFrame(silver_d1, schema),
        "silver_now": wh.read(spark, "silver", "order_lines"),
    }  # fmt: skip


KEYS = {"customer_features": ["customer_id"], "interactions": ["customer_id", "product_id"]}


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_plain_where_as_of_returns_the_complete_snapshot(daily: dict, name: str) -> None:
    wh = daily["wh"]
    # D1 and the backfilled D_MID were computed from silver as the D1 run saw it; D2 from now
    seen = {D1: daily["silver_d1"], D_MID: daily["silver_d1"], D2: daily["silver_now"]}
    for as_of, lines in seen.items():
        got = _plain_sql(wh, name, as_of)
        assert len(got) > 0 and set(got["as_of"].astype(str)) == {as_of.isoformat()}
        _same_rows(got, _expected(lines, name, as_of), KEYS[name])


def test_snapshot_holds_every_key_with_a_sale_not_only_changed_ones(daily: dict) -> None:
    interactions = _plain_sql(daily["wh"], "interactions", D2)
    pairs = set(zip(interactions["customer_id"], interactions["product_id"], strict=True))
    # (C3,P2) did not change after D1 and is still there; C2's corrected line moved to P2
    assert pairs == {("C1", "P1"), ("C1", "P2"), ("C2", "P2"), ("C3", "P1"), ("C3", "P2")}
    strength = interactions.set_index(["customer_id", "product_id"])["strength"]
    assert strength[("C1", "P2")] == pytest.approx(3 * 0.5 ** (1 / HALF_LIFE), abs=1e-6)
    p1 = 2 * 0.5 ** (5 / HALF_LIFE) + 2 * 0.5 ** (6 / HALF_LIFE)  # O1 and the late O6
    assert strength[("C1", "P1")] == pytest.approx(p1, abs=1e-6)


def test_rerun_replaces_its_slice_and_backfill_leaves_later_dates_alone(daily: dict) -> None:
    spark, wh = daily["spark"], daily["wh"]
    for name in SNAPSHOTS:
        table = wh.read(spark, "gold", name)
        per_date = {r["as_of"]: r["count"] for r in table.groupBy("as_of").count().collect()}
        assert set(per_date) == {D1, D_MID, D2}
        # one copy of D2 after the rerun, written by the rerun
        runs = {r["run_id"] for r in table.where(f"as_of = DATE'{D2}'").collect()}
        assert runs == {daily["rerun"].run_id}
        assert per_date[D2] == daily["rerun"].stage("gold").rows_out[f"gold/{name}"]
    assert daily["backfill"].stage("gold").summary["silver_version_read"] is not None
    assert daily["second"].stage("gold").summary["snapshot_rows"] == {
        "customer_features": 3, "interactions": 5,
    }  # fmt: skip
