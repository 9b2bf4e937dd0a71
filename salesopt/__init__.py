"""salesopt: retail order logs to Delta tables, segments, recommendations, forecasts, decisions."""

__version__ = "0.1.0"
