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
        # Labelled children, looked up once: this runs on every request. Label values are bounded
        # (route templates, methods, statuses, two pools), so the caches are too.
        self._request_children: dict[tuple[str, str, int], tuple] = {}
        self._db_children: dict[str, object] = {}

    def request(self, route: str, method: str, status: int, seconds: float | None) -> None:
        """One answered request. seconds=None: counted, but no latency (a load request dropped
        before it was sent has none, and a 0 would drag the percentiles down under overload)."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.metrics.requests.labels(route, method, str(status)),
                self.metrics.request_duration.labels(route),
            )
        children[0].inc()
        if seconds is not None:
            children[1].observe(seconds)
        self.timeline.request(route, status, seconds)

    def db_query(self, pool: str, seconds: float) -> None:
        child = self._db_children.get(pool)
        if child is None:
            child = self._db_children[pool] = self.metrics.db_duration.labels(pool)
        child.observe(seconds)
        self.timeline.db(pool, seconds)

    def db_error(self, pool: str, sqlstate: str) -> None:
        self.metrics.db_errors.labels(pool, sqlstate).inc()
