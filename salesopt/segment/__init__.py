"""Customer segmentation with Spark MLlib KMeans: `run(ctx)` is the stage (docs/segmentation.md)."""

from salesopt.segment.stage import run

__all__ = ["run"]
