"""Hand-run benchmarks (not part of pytest): ``python -m sandbox.testenv -- python -m bench terminal``."""
