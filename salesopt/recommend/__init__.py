"""Product recommendations: implicit ALS, buy again, popularity and cold start (see
docs/recommendations.md). The stage entry point is `salesopt.recommend.stage.run`."""
