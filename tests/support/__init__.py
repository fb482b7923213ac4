"""Fixtures shared by the tests and the benchmarks (``bench/`` imports these; never the reverse)."""
