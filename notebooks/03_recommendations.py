# Databricks notebook source
# MAGIC %md
# MAGIC # 03 · Recommendations
# MAGIC
# MAGIC ALS recommendations from `gold/interactions` (pipeline stage `recommend`) and their
# MAGIC offline metrics against the popularity baseline. Run notebooks 01 and 02 first.
# MAGIC
# MAGIC **Parameters**: `conf`, `warehouse`, `landing`, `as_of` (see notebook 01).

# COMMAND ----------

from salesopt import notebook as nb
from salesopt.pipeline import refresh
from salesopt.session import get_spark

run = nb.setup()
spark = get_spark(run.settings.spark)

# COMMAND ----------

summary = refresh(spark, run.settings, run.as_of, stages=["recommend"])
print(summary.stage("recommend").summary)

# COMMAND ----------

# MAGIC %md ## Offline metrics and a sample of recommendations

# COMMAND ----------

nb.display(nb.table(spark, run, "gold", "recommendation_metrics"))
nb.display(nb.table(spark, run, "gold", "recommendations").orderBy("customer_id", "rank"))
