"""The one place a SparkSession is made.

Five situations, one function:
- an active session exists (Databricks, a notebook, a test fixture): it is reused, with only the
  keys that change results set (`RESULT_CONF`: UTC, ANSI off, no schema auto-merge);
- on Databricks (`$DATABRICKS_RUNTIME_VERSION`, job clusters and serverless alike) without an
  active one: the platform's session, `SparkSession.builder.getOrCreate()` (which follows a
  `$SPARK_REMOTE` the platform set), likewise with only `RESULT_CONF` set (sizing such as
  shuffle partitions stays the platform's or the job's);
- a Spark Connect server is named (`spark.remote`, or `$SPARK_REMOTE` off Databricks): a
  remote session; the server brings Delta (its jars and `spark.sql.extensions`), salesopt sets
  only the session conf it may change;
- the process was started by `spark-submit` (or a cluster launcher): the master and every conf
  given there are respected; salesopt only adds the Delta settings and its defaults where the
  submitter left them unset;
- otherwise the embedded default: `local[*]` with Delta jars from the local jar folder, so start-up
  needs no network (never `spark.jars.packages`).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

from pyspark import SparkConf
from pyspark.sql import SparkSession

from salesopt.config import SparkSettings
from salesopt.errors import SetupError
from salesopt.io.delta import is_connect
from salesopt.jars import user_jars_dir

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
_JARS_ENV = "SALESOPT_JARS_DIR"
LOG4J_CONF = Path(__file__).with_name("log4j2.properties")


def jar_locations(jars_dir: str | None = None) -> list[str]:
    """Where Delta jars are looked for, in order: setting, $SALESOPT_JARS_DIR, ./.jars, the
    checkout's .jars, then the user cache `salesopt setup` fills."""
    candidates = [jars_dir, os.environ.get(_JARS_ENV), ".jars"]
    candidates.append(str(Path(__file__).resolve().parents[1] / ".jars"))
    candidates.append(str(user_jars_dir()))
    return [c for c in candidates if c]


def find_delta_jars(jars_dir: str | None = None, locations: list[str] | None = None) -> list[Path]:
    """Delta jars fetched by `make setup`, from the first location that has them."""
    for candidate in locations if locations is not None else jar_locations(jars_dir):
        jars = sorted(Path(candidate).glob("*.jar")) if candidate else []
        if any(j.name.startswith("delta-spark") for j in jars):
            return jars
    raise SetupError(
        "Delta Lake jars not found (looked in spark.jars_dir, $SALESOPT_JARS_DIR, ./.jars and "
        f"{user_jars_dir()}): run `salesopt setup` once to download them (or `make setup` in a "
        "checkout)"
    )


def extra_jars(folder: str | None) -> list[Path]:
    """The jars of `spark.extra_jars_dir` (none when unset); a folder without jars is an error."""
    if not folder:
        return []
    jars = sorted(Path(folder).glob("*.jar"))
    if not jars:
        raise SetupError(
            f"spark.extra_jars_dir {folder} holds no jars "
            "(run `make s3-jars` to fetch the S3A connector)"
        )
    return jars


def default_conf(settings: SparkSettings) -> dict[str, str]:
    """Conf salesopt wants unless the caller set it: Delta, UTC, adaptive execution."""
    return {
        **DELTA_CONF,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.ansi.enabled": "false",
    }


# session keys salesopt's results depend on: set on every session it runs on, its own or not
RESULT_CONF = (
    "spark.sql.session.timeZone",
    "spark.sql.ansi.enabled",
    "spark.databricks.delta.schema.autoMerge.enabled",
)


def embedded_conf(settings: SparkSettings) -> dict[str, str]:
    """Conf for the embedded local session, before `settings.conf` overrides."""
    jars = find_delta_jars(settings.jars_dir) + extra_jars(settings.extra_jars_dir)
    return {
        **default_conf(settings),
        "spark.master": settings.master,
        "spark.app.name": settings.app_name,
        "spark.driver.memory": settings.driver_memory,
        "spark.jars": ",".join(str(j) for j in jars),
        "spark.ui.enabled": str(settings.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.pyspark.python": sys.executable,  # workers use this interpreter's packages
        "spark.pyspark.driver.python": sys.executable,
        "spark.driver.extraJavaOptions": driver_java_options(settings),
        **one_machine_conf(settings),
    }


def driver_java_options(settings: SparkSettings) -> str:
    """The embedded driver's JVM options: salesopt's log4j configuration and level."""
    return f"-Dlog4j2.configurationFile={LOG4J_CONF} -Dsalesopt.log.level={settings.log_level}"


# compiled query classes kept per JVM (`one_machine_conf`); a static Spark conf
CODEGEN_CACHE_ENTRIES = 2000


def one_machine_conf(settings: SparkSettings) -> dict[str, str]:
    """Fixed costs sized for one machine (embedded session only; a cluster keeps Spark's).

    - Delta rebuilds a table's file list in `snapshotPartitions` tasks (default 50) each time a
      new table version is read; a refresh reads dozens of new versions, so on a few cores the
      tasks, not the files, were the cost. `shuffle_partitions` tasks is plenty for the file
      lists of this machine's tables.
    - Spark lists more than `parallelPartitionDiscovery.threshold` folders (default 32) with a
      Spark job of one task per folder; the landing has a folder per delivery day and one for
      its late files, and that job costs seconds per listing on a few cores. The driver lists
      them itself instead.
    - Spark keeps the compiled code of the last `codegen.cache.maxEntries` queries (default
      100). One incremental refresh compiles about 500 distinct classes, so with the default
      the next refresh in the same session compiles them all again. A notebook or a long-lived
      driver gains; a fresh process per run does not.
    - Spark sizes file-read tasks by bytes on disk, at least one per core. Bronze holds raw
      text that compresses about ten to one and costs far more CPU to parse than to read, so on
      a few cores its batch was read in a handful of uneven tasks and cores sat idle at the end.
      At least `shuffle_partitions` read tasks keep the cores evenly busy.
    """
    return {
        "spark.databricks.delta.snapshotPartitions": str(settings.shuffle_partitions),
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
        "spark.sql.codegen.cache.maxEntries": str(CODEGEN_CACHE_ENTRIES),
        "spark.sql.files.minPartitionNum": str(settings.shuffle_partitions),
    }


def _submitted() -> bool:
    """True when a launcher (spark-submit, a cluster) started this Python process."""
    return "PYSPARK_GATEWAY_PORT" in os.environ or "SPARK_SUBMIT_OPTS" in os.environ


def get_spark(settings: SparkSettings, checkpoint_dir: str | None = None) -> SparkSession:
    """Returns the active session, or builds one as described in the module docstring.

    `checkpoint_dir` becomes `spark.checkpoint.dir` (ALS checkpoints there; Spark 4 reads it
    only at start-up) unless the launcher set one.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        log.info("reusing the active Spark session (master=%s)", _master(active))
        _set_session_defaults(active, settings, RESULT_CONF)
        return active
    if os.environ.get("DATABRICKS_RUNTIME_VERSION") and not settings.remote:
        _quiet_connect_warnings()
        spark = SparkSession.builder.getOrCreate()
        log.info("the Databricks session (runtime %s)", os.environ["DATABRICKS_RUNTIME_VERSION"])
        _set_session_defaults(spark, settings, RESULT_CONF)
        return spark
    remote = settings.remote or os.environ.get("SPARK_REMOTE")
    if remote:
        return _remote_session(remote, settings)
    if _submitted():
        conf = SparkConf()  # holds what spark-submit was given
        for key, value in default_conf(settings).items():
            conf.setIfMissing(key, value)
        conf.setIfMissing("spark.app.name", settings.app_name)
        if checkpoint_dir:
            conf.setIfMissing("spark.checkpoint.dir", checkpoint_dir)
        for key, value in settings.conf.items():
            conf.set(key, value)
        spark = SparkSession.builder.config(conf=conf).getOrCreate()
        log.info("Spark session from the launcher (master=%s)", _master(spark))
    else:
        # PySpark takes the worker interpreter from this variable when it creates the context;
        # without it workers start `python3` from PATH, which may lack pandas and pyarrow.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder
        extra = {"spark.checkpoint.dir": checkpoint_dir} if checkpoint_dir else {}
        for key, value in {**embedded_conf(settings), **extra, **settings.conf}.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        log.info("embedded Spark session started (master=%s)", settings.master)
    return spark


# Session conf a Spark Connect client may set; the rest (extensions, catalog) is the server's
STATIC_CONF = ("spark.sql.extensions", "spark.sql.catalog.spark_catalog")


def _remote_session(url: str, settings: SparkSettings) -> SparkSession:
    """A Spark Connect session to `url` with salesopt's session defaults and `settings.conf`.

    The server must have Delta Lake (its jars and `spark.sql.extensions`); salesopt's Delta
    operations are SQL statements, so the Delta Connect plugin is not needed.
    """
    _quiet_connect_warnings()
    spark = SparkSession.builder.remote(url).getOrCreate()
    _set_session_defaults(spark, settings)
    own_session(spark)
    log.info("Spark Connect session (%s)", url)
    return spark


def _quiet_connect_warnings() -> None:
    """The classic driver logs unpartitioned windows (over a handful of per-product rows here)
    at WARN in the JVM log; a Connect client repeats each as a Python warning on the console."""
    warnings.filterwarnings("ignore", message="WARN WindowExpression: No Partition Defined")


def _set_session_defaults(
    spark: SparkSession, settings: SparkSettings, keys: tuple[str, ...] | None = None
) -> None:
    """salesopt's session defaults (`keys` of them; all by default) and `settings.conf` on a
    session salesopt did not start; a key the server fixes keeps the server's value."""
    defaults = default_conf(settings)
    assert keys is None or set(keys) <= set(defaults), keys
    for key, value in defaults.items():
        if key in STATIC_CONF or (keys is not None and key not in keys):
            continue
        try:
            current = spark.conf.get(key, None)
        except Exception:  # a managed server may not expose it: set it anyway
            current = None
        if current == value:
            continue
        try:
            spark.conf.set(key, value)
        except Exception:  # a managed server (serverless) fixes some keys; its value stands
            log.info("the Spark server keeps its own %s", key)
            continue
        if current is not None:
            log.info("set %s=%s on the session (was %s)", key, value, current)
    _apply_session_conf(spark, settings)


# Connect sessions closed before the command exits (close_remote): those `_remote_session`
# opened, and on Databricks the platform's one the command line took (`own_session`)
_OPENED: list[SparkSession] = []


def own_session(spark: SparkSession) -> None:
    """The command line owns its process: on Databricks (a serverless task), the Connect
    session it runs on, active or taken, ends with it (`close_remote`). Not for notebooks."""
    if is_connect(spark) and not any(spark is opened for opened in _OPENED):
        _OPENED.append(spark)


def close_remote(spark: SparkSession) -> None:
    """Closes a Spark Connect session salesopt opened or owns, before the command exits (a
    classic session, or a Connect session a notebook holds, is left alone).

    A model fitted over Connect frees its server-side copy when Python collects it; left to
    interpreter exit, that call hangs in gRPC and the process never ends. A closed session
    makes it a no-op.
    """
    if not is_connect(spark) or not any(spark is opened for opened in _OPENED):
        return
    _OPENED.remove(spark)
    try:
        spark.stop()
    except Exception:  # the command's own outcome stands
        log.debug("closing the Spark Connect session failed", exc_info=True)


def ensure_checkpoint_dir(spark: SparkSession, checkpoint_dir: str) -> str | None:
    """The session's checkpoint folder, set to `checkpoint_dir` when it has none.

    A session salesopt did not start (a Databricks notebook or job, a reused session) may have
    no checkpoint folder, and ALS then runs without checkpoints: its lineage grows with every
    iteration. Under Spark Connect there is no context to set it on: the server's
    `spark.checkpoint.dir` (a start-up conf) is returned, None and a log line without one.
    """
    try:
        context = spark.sparkContext
    except Exception:  # Spark Connect: no SparkContext on the client; the server's start conf
        try:
            server_dir = spark.conf.get("spark.checkpoint.dir", None)
        except Exception:  # a managed server may not expose it
            server_dir = None
        if not server_dir:
            log.info("Spark Connect server without spark.checkpoint.dir: ALS runs unchecked")
        return server_dir
    current = context.getCheckpointDir()
    if current:
        return current
    context.setCheckpointDir(checkpoint_dir)
    log.info("checkpoints in %s", checkpoint_dir)
    return context.getCheckpointDir()


def _apply_session_conf(spark: SparkSession, settings: SparkSettings) -> None:
    """Applies the runtime-modifiable keys of `settings.conf` to a reused session."""
    for key, value in settings.conf.items():
        try:
            spark.conf.set(key, value)
        except Exception:
            log.warning("could not set %s on the active session (static conf)", key)


def _master(spark: SparkSession) -> str:
    return spark.conf.get("spark.master", "unknown") or "unknown"
