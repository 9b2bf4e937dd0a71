"""The SQL spelling of Delta operations and the session-kind checks (no JVM)."""

from __future__ import annotations

from delta import exceptions as delta_errors
from pyspark.errors.exceptions.connect import SparkConnectGrpcException

from salesopt.io import delta
from salesopt.pipeline import is_commit_conflict


def test_a_path_is_quoted_as_one_sql_identifier() -> None:
    assert delta.ref("/w/gold/sales_daily") == "delta.`/w/gold/sales_daily`"
    assert delta.ref("/w/odd`name") == "delta.`/w/odd``name`"


def test_a_connect_session_is_told_apart_by_its_class() -> None:
    connect = type("SparkSession", (), {"__module__": "pyspark.sql.connect.session"})
    classic = type("SparkSession", (), {"__module__": "pyspark.sql.session"})
    assert delta.is_connect(connect()) is True  # type: ignore[arg-type]
    assert delta.is_connect(classic()) is False  # type: ignore[arg-type]


def test_commit_conflicts_are_recognised_on_both_session_kinds() -> None:
    over_connect = SparkConnectGrpcException(
        message="[DELTA_CONCURRENT_APPEND] files were added", errorClass="DELTA_CONCURRENT_APPEND"
    )
    assert is_commit_conflict(over_connect)
    changed = SparkConnectGrpcException(message="m", errorClass="DELTA_METADATA_CHANGED")
    assert is_commit_conflict(changed)
    assert is_commit_conflict(delta_errors.ConcurrentAppendException("x", None))
    other = SparkConnectGrpcException(message="m", errorClass="DELTA_MISSING_DELTA_TABLE")
    assert not is_commit_conflict(other)
    assert not is_commit_conflict(ValueError("DELTA_CONCURRENT_APPEND"))  # text is not a type


def test_a_relative_local_warehouse_becomes_absolute(tmp_path, monkeypatch) -> None:
    from salesopt.io.tables import Warehouse, absolute_root

    monkeypatch.chdir(tmp_path)
    assert Warehouse("wh/").root == f"{tmp_path}/wh"  # delta.`wh/...` would name a table
    assert Warehouse("./wh").path("gold", "sales_daily") == f"{tmp_path}/wh/gold/sales_daily"
    for kept in ("/abs/wh", "s3a://bucket/wh", "file:/abs/wh", "dbfs:/wh", "abfss://c@a/wh"):
        assert absolute_root(kept) == kept


class _ConnectSession:
    """Answers DESCRIBE DETAIL with `error` as a Connect server would."""

    __module__ = "pyspark.sql.connect.session"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def sql(self, text: str):
        assert text.startswith("DESCRIBE DETAIL delta.`")
        raise self.error


def test_over_connect_a_missing_path_is_no_table_and_other_errors_surface() -> None:
    missing = SparkConnectGrpcException(message="m", errorClass="DELTA_FILE_NOT_FOUND")
    assert delta.is_delta_table(_ConnectSession(missing), "/w/gold/x") is False  # type: ignore[arg-type]
    down = SparkConnectGrpcException(message="m", errorClass="CONNECT_SESSION_CLOSED")
    try:
        delta.is_delta_table(_ConnectSession(down), "/w/gold/x")  # type: ignore[arg-type]
    except SparkConnectGrpcException as exc:
        assert exc is down
    else:
        raise AssertionError("an unrelated server error must not read as 'no table'")
