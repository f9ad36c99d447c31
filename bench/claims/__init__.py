"""Answer-once claims, grouped against one transaction each: ``python -m bench.claims``."""
