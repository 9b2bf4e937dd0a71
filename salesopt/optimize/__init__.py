"""Decisions from sales and forecasts: price elasticity, price suggestions, replenishment plan.

The stage entry point is `salesopt.optimize.stage.run`; `run` here is the same function so the
pipeline can load the package like any other stage module.
"""

from __future__ import annotations

from salesopt.optimize.stage import run

__all__ = ["run"]
