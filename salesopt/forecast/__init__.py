"""Per-product sales forecasting: automatic ARIMA fanned out with applyInPandas.

See docs/forecasting.md for the method and docs/tables.md for the output tables.
"""
