"""Measurement helpers the benchmarks share (benchmarks/), kept in the library so tests can check them."""
