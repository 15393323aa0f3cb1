"""Benchmark scripts; run them from the repository root as modules, e.g. ``python -m benchmarks.teacher_dev``."""
