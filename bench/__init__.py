"""`python -m bench`: the performance benchmarks of issue 7 (see bench/RESULTS.md)."""
