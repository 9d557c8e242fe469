"""Benchmarks that print their figures next to DESIGN.md's targets (`make bench`)."""
