"""Benchmarks. Each prints its numbers next to a baseline measured in the same run."""
