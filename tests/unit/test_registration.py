"""Table registration by name: what SQL a warehouse issues for each catalog setting."""

from __future__ import annotations

from salesopt.config import CatalogSettings
from salesopt.io.tables import Warehouse


def test_path_only_without_a_catalog_or_prefix() -> None:
    assert Warehouse("/lake").registration_sql("gold", "sales_daily") == []


def test_schema_prefix_registers_at_the_table_path() -> None:
    wh = Warehouse("s3://lake/so", CatalogSettings(schema_prefix="salesopt"))
    assert wh.registration_sql("gold", "sales_daily") == [
        "CREATE SCHEMA IF NOT EXISTS salesopt_gold",
        "CREATE TABLE IF NOT EXISTS salesopt_gold.sales_daily USING DELTA "
        "LOCATION 's3://lake/so/gold/sales_daily'",
    ]


def test_unity_catalog_registers_an_external_location_but_never_a_volume() -> None:
    external = Warehouse(
        "abfss://lake@acct.dfs.core.windows.net/so", CatalogSettings(catalog="main")
    )
    assert external.registration_sql("gold", "sales_daily")[1] == (
        "CREATE TABLE IF NOT EXISTS main.gold.sales_daily USING DELTA "
        "LOCATION 'abfss://lake@acct.dfs.core.windows.net/so/gold/sales_daily'"
    )
    volume = Warehouse("/Volumes/main/salesopt/warehouse", CatalogSettings(catalog="main"))
    assert volume.registration_sql("gold", "sales_daily") == []


def test_a_volume_is_never_registered_even_with_only_a_schema_prefix() -> None:
    # the bundle's dev target: the workspace's default (Unity) catalog, a schema prefix
    dev = Warehouse("/Volumes/dev/salesopt/warehouse_jane", CatalogSettings(schema_prefix="so"))
    assert dev.registration_sql("silver", "order_lines") == []
