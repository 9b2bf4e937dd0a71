"""The spark-submit driver: runs one `salesopt` command (`salesopt.cli.main`) with its arguments.

Ship the package with the job (executors never use the driver's checkout): `make dist` builds
dist/salesopt-<version>-py3-none-any.whl, dist/salesopt.zip and dist/jobs/main.py. Exact
spark-submit line::

    spark-submit --master yarn --deploy-mode client \
    --packages io.delta:delta-spark_4.1_2.13:4.3.1 \
    --py-files dist/salesopt.zip \
    --conf spark.sql.shuffle.partitions=200 --executor-memory 4g \
    dist/jobs/main.py refresh --conf conf/cluster.yaml --as-of 2025-06-30 \
    --stages ingest,silver,gold  # optional subset

Any command and flag of the `salesopt` command line works here (`refresh`, `maintain`, ...).
The last stdout line is the summary as JSON. Exit codes: 0 ok, 1 run failed, 2 usage or
configuration (salesopt/cli.py, docs/operations.md).
"""

import sys

from salesopt.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
