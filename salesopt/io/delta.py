"""Delta operations as SQL statements, so they run on any session.

`delta.tables.DeltaTable` needs, on a Spark Connect session (Databricks serverless and shared
clusters, `SparkSession.builder.remote(...)`), the Delta Connect plugin on the server; Delta's SQL
(`MERGE`, `DESCRIBE HISTORY`, `RESTORE`, `OPTIMIZE`, `VACUUM`, `DELETE`) needs only the Delta
extension every Delta-enabled server has. The statements address tables by path
(`delta.`<path>``), as the rest of the warehouse does.
"""

from __future__ import annotations

import logging
import uuid

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import DataFrame, Row, SparkSession

log = logging.getLogger(__name__)

# what a server answers for a path that holds no Delta table (over Connect a missing path's
# Java FileNotFoundException may arrive untyped, with only its condition)
NO_TABLE_CONDITIONS = (
    "DELTA_FILE_NOT_FOUND", "DELTA_PATH_DOES_NOT_EXIST", "PATH_NOT_FOUND",
    "TABLE_OR_VIEW_NOT_FOUND", "DELTA_MISSING_DELTA_TABLE", "DELTA_TABLE_NOT_FOUND",
)  # fmt: skip


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect session (no JVM, no SparkContext on the client)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def ref(path: str) -> str:
    """The SQL name of the Delta table at `path`."""
    return "delta.`" + path.replace("`", "``") + "`"


def is_delta_table(spark: SparkSession, path: str) -> bool:
    """Whether `path` holds a Delta table.

    A classic session asks the Delta log directly; over Spark Connect the table's detail is
    asked for: a folder without a Delta log has no `delta` format, and a missing path is an
    error with one of NO_TABLE_CONDITIONS.
    """
    if not is_connect(spark):
        return bool(DeltaTable.isDeltaTable(spark, path))
    try:
        row = spark.sql(f"DESCRIBE DETAIL {ref(path)}").select("format").first()
    except PySparkException as exc:
        condition = str(exc.getCondition() or "")
        if isinstance(exc, AnalysisException) or condition.startswith(NO_TABLE_CONDITIONS):
            return False
        raise
    return row is not None and row["format"] == "delta"


def history(spark: SparkSession, path: str, limit: int | None = None) -> DataFrame:
    """The table's commits, newest first (`DESCRIBE HISTORY`)."""
    return spark.sql(f"DESCRIBE HISTORY {ref(path)}" + (f" LIMIT {int(limit)}" if limit else ""))


def latest_commit(spark: SparkSession, path: str) -> Row | None:
    """The newest commit of the table's history."""
    return history(spark, path, 1).first()


def detail(spark: SparkSession, path: str) -> Row:
    """The table's `DESCRIBE DETAIL` row (format, partitionColumns, numFiles, ...)."""
    row = spark.sql(f"DESCRIBE DETAIL {ref(path)}").first()
    if row is None:  # pragma: no cover - DESCRIBE DETAIL always returns one row
        raise RuntimeError(f"no detail for {path}")
    return row


def merge(
    spark: SparkSession,
    path: str,
    source: DataFrame,
    on: str,
    matched_update_if: str | None = None,
    insert_unmatched: bool = True,
    schema_evolution: bool = False,
) -> None:
    """`MERGE INTO` the table at `path` from `source` (aliases `t` and `s` in the conditions):
    matched rows are updated with all of the source's columns (where `matched_update_if`
    holds), unmatched source rows inserted."""
    view = f"_salesopt_merge_source_{uuid.uuid4().hex}"
    source.createOrReplaceTempView(view)
    clauses = [
        "WHEN MATCHED"
        + (f" AND ({matched_update_if})" if matched_update_if else "")
        + " THEN UPDATE SET *"
    ]
    if insert_unmatched:
        clauses.append("WHEN NOT MATCHED THEN INSERT *")
    evolution = " WITH SCHEMA EVOLUTION" if schema_evolution else ""
    try:
        spark.sql(
            f"MERGE{evolution} INTO {ref(path)} t USING {view} s ON {on} " + " ".join(clauses)
        )
    finally:
        try:
            spark.catalog.dropTempView(view)
        except Exception:  # never hides the MERGE's own error; the view dies with the session
            log.debug("could not drop temp view %s", view, exc_info=True)


def delete(spark: SparkSession, path: str, where: str | None = None) -> None:
    """Deletes the rows matching the SQL `where` (all rows without it)."""
    spark.sql(f"DELETE FROM {ref(path)}" + (f" WHERE {where}" if where else ""))


def restore(spark: SparkSession, path: str, version: int) -> None:
    """Puts the table back to `version` in a new commit (`RESTORE`)."""
    spark.sql(f"RESTORE TABLE {ref(path)} TO VERSION AS OF {int(version)}")


def optimize(spark: SparkSession, path: str) -> Row | None:
    """Compacts small files; returns the row with the `metrics` struct."""
    return spark.sql(f"OPTIMIZE {ref(path)}").first()


def vacuum(spark: SparkSession, path: str, retention_hours: float) -> None:
    """Deletes files no version within `retention_hours` needs."""
    spark.sql(f"VACUUM {ref(path)} RETAIN {float(retention_hours)} HOURS").collect()
