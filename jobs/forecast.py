"""Forecast job: per-product forecasts fanned out over the cluster (stage forecast).

Ship the package with the job (executors never use the driver's checkout): `make dist` builds
dist/salesopt-<version>-py3-none-any.whl and dist/salesopt.zip. Exact spark-submit line::

    spark-submit --master yarn --deploy-mode client \
    --packages io.delta:delta-spark_4.1_2.13:4.3.1 \
    --py-files dist/salesopt.zip \
    --conf spark.sql.shuffle.partitions=200 --executor-memory 4g \
    jobs/forecast.py --conf conf/cluster.yaml --as-of 2025-06-30

Flags: --conf, --as-of (required), --warehouse, --landing, --set section.key=value, --run-id.
The last stdout line is the run summary as JSON. Exit codes: 0 ok, 1 run failed, 2 usage or
configuration (see salesopt/jobs.py and docs/operations.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pyspark.sql import SparkSession

from salesopt import jobs
from salesopt.config import Settings
from salesopt.summary import RunSummary

JOB = "forecast"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return jobs.parse_args(argv, JOB)


def run(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> RunSummary:
    return jobs.run(spark, settings, args)


if __name__ == "__main__":
    sys.exit(jobs.execute(JOB, sys.argv[1:]))
