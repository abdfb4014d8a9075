"""Benchmarks: measurements run by hand (python -m benchmarks.NAME), never timed in tests."""
