# Databricks notebook source
# MAGIC %md
# MAGIC # 04 · Forecasting
# MAGIC
# MAGIC One model per product, fanned out with `applyInPandas` (pipeline stage `forecast`):
# MAGIC forecasts with intervals, a status row per product, backtest metrics against the seasonal
# MAGIC naive baseline. Run notebook 01 first.
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

summary = refresh(spark, run.settings, run.as_of, stages=["forecast"])
print(summary.stage("forecast").summary)

# COMMAND ----------

# MAGIC %md ## Status per product, metrics, forecasts

# COMMAND ----------

nb.display(nb.table(spark, run, "gold", "forecast_status").groupBy("status").count())
nb.display(nb.table(spark, run, "gold", "forecast_metrics").where(F.col("scope") == "overall"))
nb.display(nb.table(spark, run, "gold", "forecasts"))
