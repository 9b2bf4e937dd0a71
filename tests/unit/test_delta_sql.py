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
