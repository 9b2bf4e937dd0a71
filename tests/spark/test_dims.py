"""Dimension files as real deliveries come: columns in another order, extra or absent optional
columns, blank values, repeated keys across files. Small CSV files written inline."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from salesopt import dims
from salesopt.errors import InputError
from salesopt.io.tables import Warehouse

pytestmark = pytest.mark.spark
KEY = "dims-test-key"


def sha(value: str) -> str:
    """The documented pseudonym: HMAC-SHA256 with the key of the trimmed lower-case value."""
    return hmac.new(KEY.encode(), value.strip().lower().encode(), hashlib.sha256).hexdigest()


def write(folder: Path, name: str, text: str, modified: int) -> Path:
    """A CSV file with a fixed modification time (seconds since the epoch)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    os.utime(path, (modified, modified))
    return path


def test_customers_files_are_read_by_their_own_headers(spark: SparkSession, tmp_path: Path) -> None:
    folder = tmp_path / "customers"
    write(folder, "a.csv", "customer_id,name,email,region\nC1,Ann,ann@example.com,north\n", 1000)
    # other order, header case and spacing, an unknown column (could be personal data)
    write(
        folder, "b.csv",
        " Email ,Region,customer_id,loyalty_card\nbob@example.com,south,C2,4929-1111\n", 2000,
    )  # fmt: skip
    load = dims.DimensionLoad()
    rows = dims.read_reference(spark, str(folder), dims.CUSTOMERS, load)
    silver = {r["customer_id"]: r for r in dims.customers_silver(rows, KEY).collect()}
    assert silver["C2"]["region"] == "south"  # not the email of the other column order
    assert silver["C2"]["email_hash"] == sha("bob@example.com")
    assert silver["C2"]["name_hash"] is None  # column absent in b.csv
    assert silver["C1"]["email_hash"] == sha("ann@example.com")
    assert list(load.unknown_columns.values()) == [["loyalty_card"]]
    values = [str(v) for r in silver.values() for v in r.asDict().values()]
    assert not any("4929" in v or "@" in v for v in values)  # nothing copied in clear


def test_products_with_only_required_columns_and_a_blank_launch_date(
    spark: SparkSession, tmp_path: Path
) -> None:
    folder = tmp_path / "products"
    write(folder, "required.csv", "product_id,category\nP1,dairy\n", 1000)
    write(
        folder, "full.csv",
        "product_id,product_name,category,unit_cost,list_price,launch_date,status,shelf\n"
        "P2,Milk,dairy,0.5,1.2,,active,A3\n",
        1000,
    )  # fmt: skip
    rows = dims.read_reference(spark, str(folder), dims.PRODUCTS)
    silver = {r["product_id"]: r.asDict() for r in dims.products_silver(rows).collect()}
    assert silver["P1"] == {
        "product_id": "P1", "product_name": None, "category": "dairy", "unit_cost": None,
        "list_price": None, "launch_date": None, "status": None, "_rescued_data": None,
    }  # fmt: skip
    # a blank launch_date is NULL and wipes nothing else of the row
    assert (silver["P2"]["product_name"], silver["P2"]["unit_cost"], silver["P2"]["status"]) == (
        "Milk", 0.5, "active",
    )  # fmt: skip
    assert silver["P2"]["launch_date"] is None
    assert json.loads(silver["P2"]["_rescued_data"]) == {"shelf": "A3"}


def test_a_repeated_key_keeps_the_whole_row_of_the_newest_file(
    spark: SparkSession, tmp_path: Path
) -> None:
    folder = tmp_path / "products"
    header = "product_id,product_name,category,unit_cost,launch_date\n"
    write(folder, "new.csv", header + "P1,Milk 2l,dairy,,2025-02-01\nP2,Rye,bakery,0.8,\n", 2000)
    write(folder, "old.csv", header + "P1,Milk,dairy,0.5,2024-01-01\nP1,Milk!,dairy,0.6,\n", 1000)
    load = dims.DimensionLoad()
    rows = dims.read_reference(spark, str(folder), dims.PRODUCTS, load)
    assert dims.count_duplicates(rows, dims.PRODUCTS.key) == (4, 2)
    silver = {r["product_id"]: r for r in dims.products_silver(rows).collect()}
    # the newest file's row, whole: its blank unit_cost is not filled from an older row
    assert (silver["P1"]["product_name"], silver["P1"]["unit_cost"]) == ("Milk 2l", None)
    assert silver["P1"]["launch_date"] == date(2025, 2, 1)
    # within one file the last row wins
    write(folder, "new.csv", header + "P1,first,dairy,1,\nP1,last,dairy,2,\n", 3000)
    rows = dims.read_reference(spark, str(folder), dims.PRODUCTS)
    winner = dims.products_silver(rows).where("product_id = 'P1'").first()
    assert (winner["product_name"], winner["unit_cost"]) == ("last", 2.0)


def test_a_file_without_a_required_column_is_named(spark: SparkSession, tmp_path: Path) -> None:
    folder = tmp_path / "products"
    write(folder, "ok.csv", "product_id,category\nP1,dairy\n", 1000)
    bad = write(folder, "bad.csv", "product_id,name\nP2,Bread\n", 1000)
    with pytest.raises(InputError, match=r"bad\.csv: missing columns \['category'\]"):
        dims.read_reference(spark, str(folder), dims.PRODUCTS)
    bad.unlink()
    with pytest.raises(InputError, match="no customers files"):
        dims.read_reference(spark, str(tmp_path / "customers"), dims.CUSTOMERS)


def test_inventory_repeats_keep_the_newest_count(spark: SparkSession, tmp_path: Path) -> None:
    folder = tmp_path / "inventory"
    write(folder, "mon.csv", "snapshot_date,product_id,on_hand\n2025-03-03,P1,40\n", 1000)
    write(folder, "fix.csv", "on_hand,product_id,snapshot_date\n12,P1,2025-03-03\n", 2000)
    rows = dims.read_reference(spark, str(folder), dims.INVENTORY)
    assert [tuple(r) for r in dims.inventory_silver(rows).collect()] == [
        (date(2025, 3, 3), "P1", 12)
    ]


def test_refresh_dims_reports_duplicates_and_unknown_columns(
    spark: SparkSession, settings_for, tmp_path: Path
) -> None:
    settings = settings_for()
    landing = tmp_path / "landing"
    write(landing / "products", "p.csv", "product_id,category\nP1,dairy\nP1,bakery\n", 1000)
    write(landing / "customers", "c.csv", "customer_id,region,notes\nC1,north,vip\n", 1000)
    wh = Warehouse.from_settings(settings)
    versions, loads = dims.refresh_dims(spark, settings, wh, "r1")
    assert set(versions) == {"silver/products", "silver/customers"}
    assert loads["silver/products"].to_dict()["duplicate_key_rows"] == 1
    assert list(loads["silver/customers"].to_dict()["unknown_columns"].values()) == [["notes"]]
    assert wh.read(spark, "silver", "products").first()["category"] == "bakery"  # last row
    _versions, again = dims.refresh_dims(spark, settings, wh, "r2")
    assert again == {}  # unchanged files: nothing read again, whichever run asks


def test_the_pii_key_is_in_no_plan(spark: SparkSession, tmp_path: Path) -> None:
    folder = tmp_path / "customers"
    write(folder, "c.csv", "customer_id,email\nC1, Ann@Example.com \nC2,\n", 1000)
    rows = dims.read_reference(spark, str(folder), dims.CUSTOMERS)
    silver = dims.customers_silver(rows, KEY)
    plans = silver._jdf.queryExecution().toString()  # parsed, analysed, optimised, physical
    assert "pii_hmac" in plans and KEY not in plans
    hashes = {r["customer_id"]: r["email_hash"] for r in silver.collect()}
    assert hashes == {"C1": sha("ann@example.com"), "C2": None}
