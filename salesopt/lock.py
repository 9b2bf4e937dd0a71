"""One refresh per warehouse at a time: an exclusive lock file with stale-lock recovery.

The lock is `<warehouse>/_refresh.lock`, created atomically (`O_CREAT | O_EXCL`) and holding the
owner's run id, host, pid and start time. A second refresh waits up to `lock_wait_s` for it, then
refuses with a message naming the holder. A lock whose process is gone (same host) or that is
older than `lock_stale_s` is stale: it is taken over and the takeover is logged. The warehouse's
Delta tables are still protected by Delta's own optimistic concurrency for writers outside
salesopt.

On object stores (s3://, abfss://, gs://, dbfs:/) there is no atomic create-if-absent through
the file system API: there salesopt relies on the scheduler running one refresh per warehouse
(Databricks Jobs `max_concurrent_runs: 1`, Airflow `max_active_runs=1`) and on Delta's
optimistic concurrency, and says so in the log.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from salesopt.config import Settings
from salesopt.errors import WarehouseLocked

log = logging.getLogger(__name__)

LOCK_NAME = "_refresh.lock"
_REMOTE_PREFIXES = ("s3://", "s3a://", "abfss://", "gs://", "dbfs:/", "wasbs://", "hdfs://")


def _local_root(warehouse: str) -> Path | None:
    if warehouse.startswith(_REMOTE_PREFIXES):
        return None
    return Path(warehouse.removeprefix("file://").removeprefix("file:"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(info: dict, stale_s: float) -> bool:
    age = time.time() - float(info.get("started", 0))
    if age > stale_s:
        return True
    return info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1)))


def _try_create(path: Path, payload: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle)
    return True


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


@contextmanager
def warehouse_lock(settings: Settings, run_id: str) -> Iterator[None]:
    """Holds the warehouse lock for the duration of the block (see module docstring)."""
    root = _local_root(settings.paths.warehouse)
    if root is None:
        log.info("warehouse on an object store: relying on the scheduler and Delta concurrency")
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    payload = {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.time(),
    }
    deadline = time.monotonic() + settings.ops.lock_wait_s
    while not _try_create(path, payload):
        holder = _read(path)
        if holder and _is_stale(holder, settings.ops.lock_stale_s):
            log.warning("taking over a stale refresh lock held by run %s", holder.get("run_id"))
            path.unlink(missing_ok=True)
            continue
        if time.monotonic() >= deadline:
            raise WarehouseLocked(
                f"another refresh holds the warehouse lock ({path}): run {holder.get('run_id')} "
                f"pid {holder.get('pid')} on {holder.get('host')}; retry later or wait "
                "(ops.lock_wait_s)"
            )
        time.sleep(1.0)
    try:
        yield
    finally:
        if _read(path).get("run_id") == run_id:
            path.unlink(missing_ok=True)
