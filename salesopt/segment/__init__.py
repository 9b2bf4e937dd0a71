"""Customer segmentation with Spark MLlib KMeans; the stage is `salesopt.segment.stage.run`
(docs/segmentation.md)."""
