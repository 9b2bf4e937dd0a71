"""Decisions from sales and forecasts: price elasticity, price suggestions, replenishment plan.

The stage entry point is `salesopt.optimize.stage.run` (docs/pricing-and-replenishment.md).
"""
