"""Benchmarks: each bench/bench_*.py prints its figures as ratios; nothing here passes or fails."""
