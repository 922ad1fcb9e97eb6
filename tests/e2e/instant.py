"""Instant stand-ins: the same resources with the shortest sensible poll intervals, so a run measures
Dagster's own overhead rather than our waits (bench/pipeline_overhead.py; TEST_INSTANT=1 in the location)."""

from __future__ import annotations

from tests.pipeline.stand_ins import replaced

POLL_SECONDS = 0.01
# Checks ask the real Prometheus; polling it every 50 ms is plenty against a 250 ms scrape interval.
CHECK_POLL_SECONDS = 0.05


def instant(resources: dict) -> dict:
    fast = {}
    for key, res in resources.items():
        kind = key.rsplit("_", 1)[-1] if key.startswith("rehearsal_") else key
        update = {
            "cluster": {"poll_interval_seconds": POLL_SECONDS},
            "crdb": {"replication_poll_seconds": POLL_SECONDS},
            "prometheus": {"check_poll_seconds": CHECK_POLL_SECONDS},
        }.get(kind, {})
        fast[key] = replaced(res, **update) if update else res
    return fast
