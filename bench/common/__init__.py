"""What the benchmarks share: child processes, statistics, tables and result files."""
