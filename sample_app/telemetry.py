"""One door for every observation: Prometheus metrics and the live timeline are fed together.

HTTP handlers (through the app's middleware) and the load engine (spike, background load) both
record here with the same route labels, so spike traffic shows in the same series as real traffic.
"""

from __future__ import annotations

from .metrics import AppMetrics
from .timeline import Timeline


class Telemetry:
    def __init__(self, metrics: AppMetrics, timeline: Timeline):
        self.metrics = metrics
        self.timeline = timeline

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.metrics.requests.labels(route, method, str(status)).inc()
        self.metrics.request_duration.labels(route).observe(seconds)
        self.timeline.request(route, status, seconds)

    def db_query(self, pool: str, seconds: float) -> None:
        self.metrics.db_duration.labels(pool).observe(seconds)
        self.timeline.db(pool, seconds)

    def db_error(self, pool: str, sqlstate: str) -> None:
        self.metrics.db_errors.labels(pool, sqlstate).inc()
