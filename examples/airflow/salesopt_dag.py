"""Airflow example: the daily salesopt refresh as one `SparkSubmitOperator` per pipeline slice.

Copy this file into the DAGs folder of an Airflow that has `apache-airflow-providers-apache-spark`
and a `spark_default` connection to the cluster (YARN, Kubernetes, standalone). The salesopt
package is shipped to the cluster with `--py-files` (`make dist` builds dist/salesopt.zip and
copies the driver to dist/jobs/main.py); set SALESOPT_DIST to where dist/ is on the Airflow
workers. Every task submits that driver with `refresh --stages <its slice>`: the same
`salesopt` command line as the console script and the Databricks wheel tasks.

The DAG runs at 02:30 UTC on a `CronTriggerTimetable`, so its logical date (`{{ ds }}`) is the
day it runs, in Airflow 2 and 3 alike; `as_of` is the day before (`{{ macros.ds_add(ds, -1) }}`),
the last complete day. A backfill or a cleared task recomputes exactly that business date.
`max_active_runs=1` keeps two refreshes off the same warehouse; Delta's optimistic concurrency
rejects a conflicting commit if one ever runs beside it.

The argument lists are built by plain functions, importable and testable without Airflow.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

DIST = os.environ.get("SALESOPT_DIST", "/opt/salesopt/dist")
CONF = os.environ.get("SALESOPT_CONF", "/opt/salesopt/conf/cluster.yaml")
DELTA_PACKAGE = "io.delta:delta-spark_4.1_2.13:4.3.1"
# task -> the pipeline stages it refreshes, in the pipeline's order (tasks run one after another)
SLICES = {
    "ingest": "ingest,silver",
    "features": "gold",
    "segment": "segment",
    "recommend": "recommend",
    "forecast": "forecast",
    "optimize": "optimize,strategy,monitor",
}
AS_OF = "{{ macros.ds_add(ds, -1) }}"  # the last complete day before the run
SCHEDULE = "30 2 * * *"  # daily at 02:30 UTC
SPARK_CONF = {
    "spark.sql.shuffle.partitions": "200",
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def application(dist: str = DIST) -> str:
    """The driver spark-submit runs (jobs/main.py: the `salesopt` command line)."""
    return f"{dist}/jobs/main.py"


def application_args(task: str, conf: str = CONF, as_of: str = AS_OF) -> list[str]:
    """Arguments after the driver: `refresh` with the settings file, the business date, the
    task's stages and a traceable run id."""
    return [
        "refresh", "--conf", conf, "--as-of", as_of, "--stages", SLICES[task],
        "--run-id", f"{as_of}_airflow_{task}",
    ]  # fmt: skip


def spark_submit_argv(task: str, dist: str = DIST, conf: str = CONF) -> list[str]:
    """The full spark-submit command the operator runs for `task` (also usable from cron)."""
    argv = ["spark-submit", "--packages", DELTA_PACKAGE, "--py-files", f"{dist}/salesopt.zip"]
    for key, value in SPARK_CONF.items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, application(dist), *application_args(task, conf)]


def build_dag() -> object:
    """The DAG: ingest -> features -> segment -> recommend -> forecast -> optimize, daily."""
    from airflow import DAG
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.timetables.trigger import CronTriggerTimetable

    with DAG(
        dag_id="salesopt_refresh",
        schedule=CronTriggerTimetable(SCHEDULE, timezone="UTC"),
        start_date=datetime(2025, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
        tags=["salesopt"],
    ) as dag:
        previous = None
        for name in SLICES:
            task = SparkSubmitOperator(
                task_id=name,
                conn_id="spark_default",
                application=application(),
                application_args=application_args(name),
                py_files=f"{DIST}/salesopt.zip",
                packages=DELTA_PACKAGE,
                conf=SPARK_CONF,
                name=f"salesopt-{name}",
            )
            if previous is not None:
                previous >> task
            previous = task
    return dag


try:
    import airflow  # noqa: F401
except ImportError:  # importable for tests and docs without Airflow
    dag = None
else:
    dag = build_dag()
