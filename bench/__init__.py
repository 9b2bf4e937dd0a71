"""Benchmarks that print and store measured numbers (see docs/benchmarks*.md)."""
