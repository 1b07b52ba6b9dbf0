"""`python -m bench`: the performance benchmarks (see bench/RESULTS.md and docs/performance.md)."""
