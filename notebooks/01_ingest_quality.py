# Databricks notebook source
# MAGIC %md
# MAGIC # 01 · Ingest and data quality
# MAGIC
# MAGIC New landing files → `bronze/orders_raw` → `silver/order_lines` (typed, deduplicated,
# MAGIC pseudonymized) → gold sales history, customer features and interactions, for one business
# MAGIC date. Runs the pipeline stages `ingest`, `silver`, `gold` and shows the reconciliation and
# MAGIC the quality results of this run.
# MAGIC
# MAGIC **Parameters** (widgets on Databricks, `SALESOPT_NB_<NAME>` environment variables elsewhere):
# MAGIC `conf` (settings file, empty = defaults + `SALESOPT_*` env), `warehouse`, `landing`,
# MAGIC `as_of` (YYYY-MM-DD, required). On Databricks the cluster has the salesopt wheel attached
# MAGIC (`databricks bundle deploy` does it).

# COMMAND ----------

from pyspark.sql import functions as F

from salesopt import notebook as nb
from salesopt.pipeline import refresh
from salesopt.session import get_spark

run = nb.setup()
spark = get_spark(run.settings.spark)

# COMMAND ----------

# MAGIC %md ## Refresh the warehouse up to gold

# COMMAND ----------

summary = refresh(spark, run.settings, run.as_of, stages=["ingest", "silver", "gold"])
for stage in summary.stages:
    print(f"{stage.stage:<8} {stage.status:<10} {stage.seconds:>6.1f}s  rows_out={stage.rows_out}")

# COMMAND ----------

# MAGIC %md ## Reconciliation: every raw line is accepted, quarantined or superseded

# COMMAND ----------

reconciliation = summary.stage("silver").summary["reconciliation"]
print(reconciliation)
print("quarantine reasons:", summary.stage("silver").summary["quarantine_reasons"])
assert reconciliation["balanced"], "reconciliation does not balance"

# COMMAND ----------

# MAGIC %md ## Quality results of this run

# COMMAND ----------

quality = nb.table(spark, run, "ops", "quality_results").where(F.col("run_id") == summary.run_id)
nb.display(quality.orderBy("table_name", "rule"))

# COMMAND ----------

# MAGIC %md ## Gold: daily sales and customer features

# COMMAND ----------

nb.display(nb.table(spark, run, "gold", "sales_daily").orderBy(F.col("date").desc()))
nb.display(nb.table(spark, run, "gold", "customer_features"))
