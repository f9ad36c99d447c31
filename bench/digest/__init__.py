"""Digests and /usage on rollups against the raw rows: ``python -m bench.digest``."""
