"""One refresh per warehouse at a time: an exclusive lock with stale-lock recovery.

Two kinds, chosen by `ops.lock`:

- `file`: `<warehouse>/_refresh.lock`, created atomically (`O_CREAT | O_EXCL`). Needs a local
  or mounted file system.
- `delta`: one row in the Delta table `ops/refresh_lock`, inserted by a MERGE that inserts only
  when the table holds no row. Two refreshes inserting at once both read the table before they
  commit, so Delta's optimistic concurrency commits one and rejects the other (a concurrent
  append); the loser then reads the winner's row. It works wherever Delta's commits are atomic
  (HDFS, ADLS, GCS, DBFS, local disks; S3 on Databricks or with Delta's DynamoDB LogStore).
- `auto` (the default): `delta` on object stores (`s3://`, `abfss://`, `gs://`, `dbfs:/`, ...)
  and Databricks' mounts of them (`/Volumes/`, `/dbfs/`), `file` on other paths, where it costs
  no Delta commit per run.

Either lock holds the owner's run id, host, pid, start time and heartbeat. While it runs, the
owner renews the heartbeat every `lock_heartbeat_s` from a background thread (the lock file's
modification time; an UPDATE of the row through a MERGE). A second refresh waits up to
`lock_wait_s` for the lock, then refuses with a message naming the holder. A lock whose process
is gone (same host) or whose heartbeat is older than `lock_stale_s` is stale: it is taken over
and the takeover is logged (for `delta`, a DELETE of that holder's row at the heartbeat read: of
two refreshes taking over at once, Delta commits one, and a holder that renewed in between
keeps it). So a run killed on another host blocks the warehouse for `lock_stale_s`, however
long runs take. An owner whose heartbeat finds its lock gone or someone else's stops at the next
stage (`HeldLock.check`). The warehouse's tables are still protected by Delta's own optimistic
concurrency for writers outside salesopt.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from salesopt.config import Settings
from salesopt.errors import SalesoptError, SetupError, WarehouseLocked
from salesopt.io.tables import Warehouse

log = logging.getLogger(__name__)

LOCK_NAME = "_refresh.lock"
LOCK_TABLE = ("ops", "refresh_lock")
_REMOTE_PREFIXES = ("s3://", "s3a://", "abfss://", "gs://", "dbfs:/", "wasbs://", "hdfs://")
# Databricks' FUSE mounts of cloud storage: file paths, but no atomic create across clusters
_CLOUD_MOUNTS = ("/Volumes/", "/dbfs/")
# the one row of `ops/refresh_lock` while a refresh holds it
LOCK_SCHEMA = StructType(
    [
        StructField("name", StringType(), False),
        StructField("run_id", StringType(), False),
        StructField("host", StringType(), True),
        StructField("pid", LongType(), True),
        StructField("started", DoubleType(), True),  # seconds since the epoch
        StructField("heartbeat", DoubleType(), True),  # last renewal, seconds since the epoch
    ]
)
_KEY = "refresh"
# a commit that lost to a concurrent one (Delta's optimistic concurrency): matched by the names
# of Delta's conflict exceptions and error classes, which every Delta release and runtime
# carries in the message (the Python classes in `delta.exceptions` are only raised once
# `delta.exceptions.captured` has been imported, which nothing does by itself)
_CONFLICT_MARKERS = (
    "ConcurrentAppendException", "ConcurrentDeleteDeleteException",
    "ConcurrentDeleteReadException", "ConcurrentTransactionException", "ConcurrentWriteException",
    "DeltaConcurrentModificationException", "MetadataChangedException",
    "ProtocolChangedException", "DELTA_CONCURRENT_", "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",
)  # fmt: skip
_RELEASE_ATTEMPTS = 5
# the scheduler pool of the Delta lock's renewals (`salesopt/fairscheduler.xml`)
RENEWAL_POOL = "salesopt_lock"
_POOL_PROPERTY = "spark.scheduler.pool"
_UNNAMED_RETRIES = 5  # reads of a lock that names no run before it counts as held


def _conflict(exc: Exception) -> str | None:
    """The line of `exc` naming Delta's commit conflict; None when it is another error."""
    for line in f"{type(exc).__name__}: {exc}".splitlines():
        if any(marker in line for marker in _CONFLICT_MARKERS):
            return line.strip(" :\t")[:200]
    return None


def _local_root(warehouse: str) -> Path | None:
    if warehouse.startswith(_REMOTE_PREFIXES):
        return None
    return Path(warehouse.removeprefix("file://").removeprefix("file:"))


def lock_kind(settings: Settings) -> str:
    """`file` or `delta`: `ops.lock`, with `auto` resolved from the warehouse path."""
    kind = settings.ops.lock
    if kind == "auto":
        shared = settings.paths.warehouse.startswith((*_REMOTE_PREFIXES, *_CLOUD_MOUNTS))
        return "delta" if shared else "file"
    if kind == "file" and _local_root(settings.paths.warehouse) is None:
        raise SetupError(
            f"ops.lock is 'file' but the warehouse {settings.paths.warehouse} is on an object "
            "store, which has no atomic create-if-absent; use 'delta' or 'auto'"
        )
    return kind


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: dict) -> str:
    if not holder:
        return "nobody (removed)"
    if holder.get("run_id") is None:
        return "no run (an unreadable lock file)"
    return f"run {holder.get('run_id')} pid {holder.get('pid')} on {holder.get('host')}"


def _since_renewed(info: dict) -> float:
    """Seconds since the lock was last renewed (a lock without heartbeat: since it was taken)."""
    return time.time() - float(info.get("heartbeat") or info.get("started") or 0)


def _is_stale(info: dict, stale_s: float) -> bool:
    """Not renewed for `stale_s`, or its process is gone on this host."""
    if _since_renewed(info) > stale_s:
        return True
    return info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid") or -1))


class _Lock(Protocol):
    where: str

    def try_acquire(self, payload: dict) -> bool: ...

    def holder(self) -> dict: ...

    def take_over(self, holder: dict) -> None: ...

    def renew(self, run_id: str) -> bool: ...

    def release(self, run_id: str) -> None: ...


class _FileLock:
    """`<warehouse>/_refresh.lock`, created with `O_CREAT | O_EXCL`."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / LOCK_NAME
        self.where = str(self.path)

    def try_acquire(self, payload: dict) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)
        return True

    def holder(self) -> dict:
        """The lock file's content, its modification time as the heartbeat; {} without a file.

        A file that names no run (empty or unreadable: its process died between creating and
        writing it, which a live run does at once) has only the heartbeat.
        """
        try:
            text, renewed = self.path.read_text(), self.path.stat().st_mtime
        except FileNotFoundError:
            return {}
        try:
            info = json.loads(text)
        except json.JSONDecodeError:
            info = {}
        return {**(info if isinstance(info, dict) else {}), "heartbeat": renewed}

    def take_over(self, holder: dict) -> None:
        now = self.holder()  # not one that changed hands or was renewed since it was read
        if all(now.get(k) == holder.get(k) for k in ("run_id", "heartbeat")):
            self.path.unlink(missing_ok=True)

    def renew(self, run_id: str) -> bool:
        if self.holder().get("run_id") != run_id:
            return False
        try:
            os.utime(self.path)
        except FileNotFoundError:
            return False
        return True

    def release(self, run_id: str) -> None:
        if self.holder().get("run_id") == run_id:
            self.path.unlink(missing_ok=True)


@contextmanager
def _renewal_pool(spark: SparkSession) -> Iterator[None]:
    """Runs the block's Spark jobs in the `RENEWAL_POOL` scheduler pool (this thread only).

    Under FAIR scheduling (`spark.scheduler.mode`, docs/operations.md) a renewal then takes
    the next free task slot; under FIFO, Spark's default, the pool is ignored and the renewal
    waits behind every task of the stage the run is in. A session without a SparkContext
    (Spark Connect) has no pools: the block runs as it is.
    """
    try:
        sc = spark.sparkContext
    except Exception:  # Spark Connect
        yield
        return
    pool = sc.getLocalProperty(_POOL_PROPERTY)
    sc.setLocalProperty(_POOL_PROPERTY, RENEWAL_POOL)
    try:
        yield
    finally:
        sc.setLocalProperty(_POOL_PROPERTY, pool)  # type: ignore[arg-type]  # None clears it


class _DeltaLock:
    """One row in the Delta table `ops/refresh_lock` (see the module docstring)."""

    def __init__(self, spark: SparkSession, wh: Warehouse) -> None:
        self.spark = spark
        self.wh = wh
        self.path = wh.path(*LOCK_TABLE)
        self.where = f"Delta table {self.path}"
        self._ready = False  # the table exists with the current schema (checked once)

    def _table(self) -> DeltaTable:
        if self._ready:
            return DeltaTable.forPath(self.spark, self.path)
        if not self.wh.exists(self.spark, *LOCK_TABLE):
            try:
                self.wh.append(self.spark.createDataFrame([], LOCK_SCHEMA), *LOCK_TABLE)
            except Exception as exc:
                if _conflict(exc) is None:  # else another refresh created it at the same moment
                    raise
        table = DeltaTable.forPath(self.spark, self.path)
        if "heartbeat" not in table.toDF().columns:  # created before lock heartbeats
            try:
                self.spark.sql(f"ALTER TABLE delta.`{self.path}` ADD COLUMNS (heartbeat DOUBLE)")
            except Exception as exc:
                if _conflict(exc) is None:  # else another run added it at the same moment
                    raise
            table = DeltaTable.forPath(self.spark, self.path)
        self._ready = True
        return table

    def _is_holder(self, run_id: str) -> F.Column:
        return (F.col("name") == _KEY) & (F.col("run_id") == run_id)

    def try_acquire(self, payload: dict) -> bool:
        row = self.spark.createDataFrame(
            [
                (_KEY, payload["run_id"], payload["host"], payload["pid"], payload["started"],
                 payload["started"])
            ],
            LOCK_SCHEMA,
        )  # fmt: skip
        try:
            merged = (
                self._table()
                .alias("t")
                .merge(row.alias("s"), "t.name = s.name")
                .whenNotMatchedInsertAll()
                .execute()
                .first()
            )
        except Exception as exc:
            conflict = _conflict(exc)
            if conflict is None:
                raise SetupError(
                    f"cannot take the warehouse lock in {self.where}: "
                    f"{str(exc).strip().splitlines()[0][:300]}"
                ) from exc
            # another refresh committed first: the caller reads its row
            log.info("warehouse lock: a concurrent commit won (%s)", conflict)
            return False
        # the MERGE's metrics say whether this run's row went in (no second read)
        return merged is not None and merged["num_inserted_rows"] == 1

    def holder(self) -> dict:
        if not self.wh.exists(self.spark, *LOCK_TABLE):
            return {}
        rows = self.wh.read(self.spark, *LOCK_TABLE).where(F.col("name") == _KEY).collect()
        return rows[0].asDict() if rows else {}

    def take_over(self, holder: dict) -> None:
        # only the row as it was read: a holder that renewed since then keeps its lock
        as_read = self._is_holder(str(holder.get("run_id"))) & F.col("heartbeat").eqNullSafe(
            F.lit(holder.get("heartbeat")).cast(DoubleType())
        )
        try:
            self._table().delete(as_read)
        except Exception as exc:
            if _conflict(exc) is None:  # else another refresh changed the row first: read again
                raise

    def renew(self, run_id: str) -> bool:
        """Sets this run's heartbeat; False when the table holds no row of this run.

        Its Spark jobs run in the `RENEWAL_POOL` scheduler pool (`_renewal_pool`).
        """
        with _renewal_pool(self.spark):
            row = self.spark.createDataFrame(
                [(_KEY, run_id, time.time())], "name string, run_id string, heartbeat double"
            )
            merged = (
                self._table()
                .alias("t")
                .merge(row.alias("s"), "t.name = s.name AND t.run_id = s.run_id")
                .whenMatchedUpdate(set={"heartbeat": "s.heartbeat"})
                .execute()
                .first()
            )
        return merged is not None and merged["num_updated_rows"] == 1

    def release(self, run_id: str) -> None:
        """Deletes this run's row; retried after a conflict (e.g. an OPTIMIZE of the table).

        Never raises: it runs when the refresh ends, also after a failure that must not be
        hidden. A row left behind is logged and taken over once it is stale.
        """
        for attempt in range(1, _RELEASE_ATTEMPTS + 1):
            try:
                self._table().delete(self._is_holder(run_id))
                return
            except Exception as exc:
                if _conflict(exc) is None or attempt == _RELEASE_ATTEMPTS:
                    log.warning(
                        "could not release the warehouse lock in %s (%s): the next run "
                        "takes it over once it is stale (ops.lock_stale_s)",
                        self.path, str(exc).splitlines()[0][:200],
                    )  # fmt: skip
                    return
                time.sleep(0.5 * attempt)


def _open(settings: Settings, spark: SparkSession | None) -> _Lock:
    if lock_kind(settings) == "file":
        root = _local_root(settings.paths.warehouse)
        assert root is not None  # lock_kind checked it
        return _FileLock(root)
    spark = spark or SparkSession.getActiveSession()
    if spark is None:
        raise SetupError("the Delta warehouse lock needs a Spark session")
    return _DeltaLock(spark, Warehouse.from_settings(settings))


def unlock(settings: Settings, run_id: str, spark: SparkSession | None = None) -> dict[str, object]:
    """Removes the warehouse lock held by `run_id` (`salesopt unlock`), for a run known dead.

    The holder must be named: a lock held by another run, perhaps alive, is never removed.
    """
    lock = _open(settings, spark)
    holder = lock.holder()
    if not holder:
        return {"lock": lock.where, "held_by": None, "removed": False}
    if holder.get("run_id") is None:
        raise SalesoptError(
            f"the warehouse lock ({lock.where}) names no run (an unreadable lock file): nothing "
            "removed; the next run takes it over once it is ops.lock_stale_s old, or delete it "
            "if no refresh or maintenance is running"
        )
    if holder.get("run_id") != run_id:
        raise SalesoptError(
            f"the warehouse lock ({lock.where}) is held by {_describe(holder)}, not by {run_id}: "
            "nothing removed"
        )
    log.warning("removing the warehouse lock held by run %s (salesopt unlock)", run_id)
    lock.take_over(holder)
    return {"lock": lock.where, "held_by": run_id, "removed": not lock.holder()}


class HeldLock:
    """The lock a run holds: renewed by a daemon thread; `check` says whether it is still held.

    A renewal that finds the lock gone or naming another run (taken over as stale, removed by
    `salesopt unlock`) marks it lost; `check` then raises, so the run stops before its next
    stage instead of writing beside the run that took over. A renewal that fails on a storage
    error is logged and retried at the next beat; the lock is only lost once another run holds it.
    """

    def __init__(self, lock: _Lock, run_id: str, interval_s: float) -> None:
        self.lock = lock
        self.run_id = run_id
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval_s > 0:
            self._thread = threading.Thread(
                target=self._beat, args=(interval_s,), name=f"lock-heartbeat-{run_id}",
                daemon=True,
            )  # fmt: skip
            self._thread.start()

    def _beat(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                if self.lock.renew(self.run_id):
                    continue
            except Exception as exc:
                log.warning(
                    "could not renew the warehouse lock in %s (%s); retrying in %.0f s",
                    self.lock.where, str(exc).splitlines()[0][:200], interval_s,
                )  # fmt: skip
                continue
            holder = self.lock.holder()  # names the new holder
            if holder.get("run_id") == self.run_id:  # still ours: the renewal missed its row
                continue
            self.lost = _describe(holder)
            log.error(
                "the warehouse lock of run %s (%s) is now held by %s: stopping at the next stage",
                self.run_id, self.lock.where, self.lost,
            )  # fmt: skip
            return

    def check(self) -> None:
        """Raises `WarehouseLocked` when a renewal found the lock held by another run or gone."""
        if self.lost is not None:
            raise WarehouseLocked(
                f"run {self.run_id} lost the warehouse lock ({self.lock.where}) while it ran: it "
                f"is now held by {self.lost}; stopped before the next stage (a run that stops "
                f"renewing for ops.lock_stale_s is taken over)"
            )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


@contextmanager
def warehouse_lock(
    settings: Settings, run_id: str, spark: SparkSession | None = None
) -> Iterator[HeldLock]:
    """Holds the warehouse lock for the duration of the block (see module docstring)."""
    lock = _open(settings, spark)
    payload = {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.time(),
    }
    deadline = time.monotonic() + settings.ops.lock_wait_s
    unnamed_reads = 0
    while not lock.try_acquire(payload):
        holder = lock.holder()
        if not holder:  # released between the two calls: try again
            time.sleep(0.2)
            continue
        named = holder.get("run_id") is not None
        if not named and unnamed_reads < _UNNAMED_RETRIES:  # perhaps created, not yet written
            unnamed_reads += 1
            time.sleep(0.2)
            continue
        if _is_stale(holder, settings.ops.lock_stale_s):
            log.warning(
                "taking over a stale warehouse lock held by %s (last renewed %.0f s ago)",
                _describe(holder),
                _since_renewed(holder),
            )
            lock.take_over(holder)
            continue
        if time.monotonic() >= deadline:
            raise WarehouseLocked(
                f"another run holds the warehouse lock ({lock.where}): {_describe(holder)}; "
                "retry later or wait (ops.lock_wait_s)"
                if named
                else f"the warehouse lock ({lock.where}) exists but names no run (an unreadable "
                "lock file); it is taken over once it is ops.lock_stale_s old; if no refresh "
                "or maintenance is running, delete it"
            )
        time.sleep(1.0)
    held = HeldLock(lock, run_id, settings.ops.lock_heartbeat_s)
    try:
        yield held
    finally:
        held.stop()
        lock.release(run_id)
