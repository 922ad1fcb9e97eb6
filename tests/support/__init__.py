"""Helpers that start REAL servers for tests (Prometheus, PostgreSQL, dagster dev) and stop them."""
