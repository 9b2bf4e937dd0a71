"""Reading and writing the warehouse's Delta tables: the table contract in one place.

Each table lives at `<warehouse>/<layer>/<name>`. With a catalog configured it is also registered
by name (`<schema_prefix>_<layer>.<name>`, or `<catalog>.<layer>.<name>` on Unity Catalog).
Gold tables are written one `as_of` slice at a time with `replaceWhere`, so a rerun for the same
business date replaces that slice instead of appending a second copy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Row, SparkSession

from salesopt.config import CatalogSettings, Settings
from salesopt.io import delta

log = logging.getLogger(__name__)

LAYERS = ("bronze", "silver", "gold", "quarantine", "ops")
_VOLUME_WARNED: list[bool] = []  # the Volume warning is logged once per process


def agg_row(df: DataFrame) -> Row:
    """The single row of a global aggregation (always exactly one row)."""
    row = df.first()
    if row is None:  # pragma: no cover - a global aggregate always returns a row
        raise RuntimeError("aggregation returned no row")
    return row


def sql_dates(days: Sequence[date]) -> str:
    """SQL date literals for an `IN (...)` predicate: `DATE'2025-01-01', DATE'2025-01-02'`."""
    return ", ".join(f"DATE'{d.isoformat()}'" for d in days)


def materialized(frame: DataFrame) -> DataFrame:
    """`frame` computed now, once, and kept without its lineage (a local checkpoint).

    For intermediates read more than once or used as a MERGE source: a lazily cached frame read
    twice by one query is computed by both branches before the cache fills, and a cached frame
    that reads a Delta table is recomputed after every write to that table. The blocks are
    freed when the frame is no longer referenced; if an executor is lost before the frame's last
    use, the refresh fails and a rerun writes again.
    """
    return frame.localCheckpoint(eager=True)


def list_file_stats(spark: SparkSession, folder: str) -> list[tuple[str, int, int]]:
    """(path, size, modification ms) of every data file under `folder`, recursively.

    Uses Spark's `binaryFile` source with only its metadata columns, so no file is read and it
    works on any file system and under Spark Connect. Names starting with `_` or `.` are skipped
    (markers, checksums, `_delta_log`). Empty when the folder does not exist.
    """
    try:
        listing = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", "[!_.]*")
            .load(folder)
            .select("path", "length", "modificationTime")
            .collect()
        )
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
            return []
        raise
    return sorted(
        (r["path"], int(r["length"]), int(r["modificationTime"].timestamp() * 1000))
        for r in listing
    )


def absolute_root(root: str) -> str:
    """A relative local warehouse root made absolute (against the working directory).

    Delta's SQL reads ``delta.`<path>` `` as a path only when the path is absolute; a URI
    (`s3a://`, `file:`, `dbfs:`) or an absolute path is kept as given.
    """
    if not root or "://" in root or root.startswith(("/", "file:", "dbfs:")):
        return root
    return os.path.abspath(root)


@dataclass(frozen=True)
class Warehouse:
    """Where tables live and how they are named; built once from settings."""

    root: str
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    # (layer, name) of every table `read` since the set was last cleared: the inputs a run's
    # tracking records per stage (`salesopt.tracking`)
    reads: set[tuple[str, str]] = field(default_factory=set, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", absolute_root(self.root.rstrip("/")))

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        return cls(root=settings.paths.warehouse, catalog=settings.catalog)

    def path(self, layer: str, name: str) -> str:
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS}")
        return f"{self.root}/{layer}/{name}"

    def qualified_name(self, layer: str, name: str) -> str | None:
        if self.catalog.catalog:
            return f"{self.catalog.catalog}.{layer}.{name}"
        if self.catalog.schema_prefix:
            return f"{self.catalog.schema_prefix}_{layer}.{name}"
        return None

    def exists(self, spark: SparkSession, layer: str, name: str) -> bool:
        return delta.is_delta_table(spark, self.path(layer, name))

    def read(self, spark: SparkSession, layer: str, name: str) -> DataFrame:
        self.reads.add((layer, name))
        return spark.read.format("delta").load(self.path(layer, name))

    def read_as_of(self, spark: SparkSession, layer: str, name: str, as_of: date) -> DataFrame:
        """The `as_of` slice of a snapshot table: the plain `WHERE as_of = D` any reader runs."""
        return self.read(spark, layer, name).where(f"as_of = DATE'{as_of.isoformat()}'")

    def version(self, spark: SparkSession, layer: str, name: str) -> int | None:
        if not self.exists(spark, layer, name):
            return None
        row = delta.latest_commit(spark, self.path(layer, name))
        return int(row["version"]) if row else None

    def last_user_metadata(self, spark: SparkSession, layer: str, name: str) -> str | None:
        """`userMetadata` of the table's latest commit (None if absent or no table)."""
        if not self.exists(spark, layer, name):
            return None
        row = delta.latest_commit(spark, self.path(layer, name))
        return row["userMetadata"] if row else None

    def write_slice(
        self,
        df: DataFrame,
        layer: str,
        name: str,
        as_of: date,
        partition_by: Sequence[str] = ("as_of",),
        user_metadata: str | None = None,
    ) -> int | None:
        """Replaces the `as_of` slice of a table with `df` (which must carry that as_of).

        One Delta commit (`replaceWhere`): a rerun for the same business date replaces its
        slice instead of appending a second copy.
        """
        predicate = f"as_of = DATE'{as_of.isoformat()}'"
        return self.replace_where(df, layer, name, predicate, partition_by, user_metadata)

    def replace_where(
        self,
        df: DataFrame,
        layer: str,
        name: str,
        predicate: str,
        partition_by: Sequence[str] = (),
        user_metadata: str | None = None,
    ) -> int | None:
        """Replaces the rows matching the SQL `predicate` with `df`, in one Delta commit.

        Every row of `df` must match `predicate` (Delta checks it). A predicate on partition
        columns touches only those partitions' files. `user_metadata` is stored in the commit
        (`last_user_metadata`).
        """
        options = {"replaceWhere": predicate, "mergeSchema": "true"}
        self._save(df, layer, name, "overwrite", options, partition_by, user_metadata)
        return self.version(df.sparkSession, layer, name)

    def overwrite(
        self,
        df: DataFrame,
        layer: str,
        name: str,
        partition_by: Sequence[str] = (),
        user_metadata: str | None = None,
    ) -> int | None:
        """Replaces a whole table (small dimension-like tables).

        `user_metadata` is stored in the commit (Delta `userMetadata`), read back with
        `last_user_metadata`.
        """
        options = {"overwriteSchema": "true"}
        self._save(df, layer, name, "overwrite", options, partition_by, user_metadata)
        return self.version(df.sparkSession, layer, name)

    def append(
        self,
        df: DataFrame,
        layer: str,
        name: str,
        partition_by: Sequence[str] = (),
        user_metadata: str | None = None,
    ) -> None:
        """Appends `df` (the run bookkeeping of `ops`).

        Unlike the other writes it does not look the new version up (a read of the history).
        """
        options = {"mergeSchema": "true"}
        self._save(df, layer, name, "append", options, partition_by, user_metadata)

    def _save(
        self,
        df: DataFrame,
        layer: str,
        name: str,
        mode: str,
        options: dict[str, str],
        partition_by: Sequence[str],
        user_metadata: str | None,
    ) -> None:
        """The one Delta write of `replace_where`, `overwrite` and `append`; registers the table."""
        writer = df.write.format("delta").mode(mode).options(**options)
        if user_metadata is not None:
            writer = writer.option("userMetadata", user_metadata)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(self.path(layer, name))
        self.register(df.sparkSession, layer, name)

    @property
    def on_volume(self) -> bool:
        """The warehouse is on a Unity Catalog Volume."""
        return self.root.startswith(("/Volumes/", "dbfs:/Volumes/"))

    def registration_sql(self, layer: str, name: str) -> list[str]:
        """The statements that register a table by name: none without a catalog or schema
        prefix, and none for a warehouse on a Volume (Unity Catalog refuses a table LOCATION
        under /Volumes, whichever catalog the name is in: such a warehouse is read by path;
        docs/operations.md)."""
        qualified = self.qualified_name(layer, name)
        if qualified is None or self.on_volume:
            return []
        location = self.path(layer, name)
        schema = qualified.rsplit(".", 1)[0]
        return [
            f"CREATE SCHEMA IF NOT EXISTS {schema}",
            f"CREATE TABLE IF NOT EXISTS {qualified} USING DELTA LOCATION '{location}'",
        ]

    def register(self, spark: SparkSession, layer: str, name: str) -> None:
        """Registers the table by name when a catalog or schema prefix is configured."""
        statements = self.registration_sql(layer, name)
        named = self.qualified_name(layer, name) is not None
        if not statements and named and not _VOLUME_WARNED:
            _VOLUME_WARNED.append(True)
            log.warning(
                "the warehouse %s is on a Unity Catalog Volume, where tables cannot be "
                "registered by name: read them by path (delta.`%s/<layer>/<name>`), or put "
                "paths.warehouse on an external location to query them by name",
                self.root, self.root,
            )  # fmt: skip
        for statement in statements:
            spark.sql(statement)
