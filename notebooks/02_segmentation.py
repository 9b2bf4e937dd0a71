# Databricks notebook source
# MAGIC %md
# MAGIC # 02 · Customer segmentation
# MAGIC
# MAGIC KMeans segments from `gold/customer_features` for one business date (pipeline stage
# MAGIC `segment`), then the segment profiles. Run `01_ingest_quality` first for the same `as_of`.
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

summary = refresh(spark, run.settings, run.as_of, stages=["segment"])
print(summary.stage("segment").summary)

# COMMAND ----------

# MAGIC %md ## Segment sizes and profiles

# COMMAND ----------

segments = nb.table(spark, run, "gold", "customer_segments")
nb.display(segments.groupBy("segment_id", "segment_label").count().orderBy(F.col("count").desc()))
nb.display(nb.table(spark, run, "gold", "segment_profiles"))
