# Databricks notebook source
# MAGIC %md
# MAGIC # 05 · Optimization, strategy by segment, monitoring and run report
# MAGIC
# MAGIC Replenishment plan and price recommendations from the forecasts and estimated price
# MAGIC elasticities (pipeline stage `optimize`), each segment's response and playbook (stage
# MAGIC `strategy`), sales anomalies (stage `monitor`), and the run log of every stage for this
# MAGIC business date. Run notebooks 01 to 04 first.
# MAGIC
# MAGIC **Parameters**: `conf`, `warehouse`, `landing`, `as_of` (see notebook 01).

# COMMAND ----------

from pyspark.sql import functions as F

from salesopt import notebook as nb
from salesopt.pipeline import refresh
from salesopt.session import get_spark

run = nb.setup()
spark = get_spark(run.settings.spark)

# COMMAND ----------

summary = refresh(spark, run.settings, run.as_of, stages=["optimize", "strategy", "monitor"])
print(summary.stage("optimize").summary)
print(summary.stage("strategy").summary)
print(summary.stage("monitor").summary)

# COMMAND ----------

# MAGIC %md ## Decisions

# COMMAND ----------

nb.display(nb.table(spark, run, "gold", "replenishment_plan"))
nb.display(nb.table(spark, run, "gold", "price_recommendations"))
nb.display(nb.table(spark, run, "gold", "segment_playbook"))
nb.display(nb.table(spark, run, "gold", "sales_anomalies"))

# COMMAND ----------

# MAGIC %md ## Run report: every stage run for this business date

# COMMAND ----------

runs = nb.table(spark, run, "ops", "runs").where(F.col("as_of") == run.as_of)
runs = runs.orderBy("started_at").select("run_id", "stage", "status", "seconds", "rows_out", "message")
nb.display(runs)
