"""Where fitted segmentation models live: `<warehouse>/models/segmentation/as_of=<date>/`.

Each folder holds the PipelineModel (`pipeline/`, the transformation and KMeans together) and the
segment map (`segments/`, parquet: cluster index -> segment id, label and centroid), so a reload
scores with the same transformation, ids and labels without refitting.
"""

from __future__ import annotations

import logging
from datetime import date

import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from salesopt.errors import StageFailed
from salesopt.io.tables import Warehouse

log = logging.getLogger(__name__)

SELECTION = "segment_model_selection"


def model_dir(warehouse: Warehouse, as_of: date) -> str:
    return f"{warehouse.root}/models/segmentation/as_of={as_of.isoformat()}"


def save(spark: SparkSession, model: PipelineModel, segment_map: pd.DataFrame, path: str) -> None:
    """Saves the pipeline and its segment map under `path` (replacing an earlier save)."""
    model.write().overwrite().save(f"{path}/pipeline")
    spark.createDataFrame(segment_map).coalesce(1).write.mode("overwrite").parquet(
        f"{path}/segments"
    )
    log.info("saved segmentation model to %s", path)


def load(spark: SparkSession, path: str) -> tuple[PipelineModel, pd.DataFrame]:
    """Loads a saved pipeline and its segment map (ordered by cluster index)."""
    model = PipelineModel.load(f"{path}/pipeline")
    segment_map: pd.DataFrame = spark.read.parquet(f"{path}/segments").toPandas()
    return model, segment_map.sort_values("cluster").reset_index(drop=True)


def latest_model(spark: SparkSession, warehouse: Warehouse, as_of: date) -> tuple[date, str]:
    """(as_of, path) of the newest model fitted at or before `as_of`, from the selection table."""
    hint = (
        f"no saved segmentation model at or before {as_of.isoformat()} under "
        f"{warehouse.root}/models/segmentation; run once with segmentation.refit: true"
    )
    if not warehouse.exists(spark, "gold", SELECTION):
        raise StageFailed(hint)
    row = (
        warehouse.read(spark, "gold", SELECTION)
        .where(F.col("chosen") & F.col("fitted") & (F.col("as_of") <= F.lit(as_of)))
        .orderBy(F.col("as_of").desc())
        .select("model_as_of", "model_path")
        .first()
    )
    if row is None:
        raise StageFailed(hint)
    return row["model_as_of"], row["model_path"]
