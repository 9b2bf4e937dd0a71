"""Benches that measure salesopt's targets: `python -m bench NAME` (docs/benchmarks.md)."""
