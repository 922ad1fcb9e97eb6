"""PromQL pinned to a past time window with the `@` modifier (Prometheus >= 2.25, on by default since 2.33).

A drill's checks and the rehearsal report judge what happened between two instants, whenever they run: the
window ends at `@ <end>` and reaches back `[<seconds>s]`, so a check re-executed later still judges the drill.
"""

from __future__ import annotations

import math

# The app's traffic and 5xx queries have one home, shared with the phase checks and the rotation check.
from ..app_promql import at, error_ratio, requests
from ..resources.prometheus import PrometheusResource

__all__ = ["at", "error_ratio", "instant", "latency_quantile", "max_over", "requests", "survivors_min",
           "window_seconds"]


def window_seconds(start: float, end: float, minimum: int) -> int:
    """Seconds from start to end, at least `minimum` (increase() needs two samples inside its range)."""
    return max(int(minimum), math.ceil(end - start))


def latency_quantile(prom: PrometheusResource, q: float, start: float, end: float) -> str:
    w = window_seconds(start, end, prom.min_window_seconds)
    sel = prom.app("app_request_duration_seconds_bucket", f'route=~"{prom.app_routes}"')
    return f"histogram_quantile({q:g}, sum by (le) (increase({sel}[{w}s] {at(end)})))"


def max_over(prom: PrometheusResource, metric: str, start: float, end: float) -> str:
    """The largest value any store reported in the window: 0 means 0 at every scrape (gauges >= 0)."""
    w = window_seconds(start, end, 1)
    return f"max(max_over_time({prom.crdb(metric)}[{w}s] {at(end)}))"


def survivors_min(prom: PrometheusResource, start: float, end: float, step: float) -> str:
    """The fewest live nodes the surviving nodes agreed on at any step of the window: max() across nodes
    (a node going down may report 0 about itself: "Number of live nodes in the cluster (will be 0 if this node
    is not itself live)", cockroachdb/cockroach pkg/kv/kvserver/liveness metaLiveNodes), then the minimum
    over time. A stopped node is not scraped at all: Prometheus marks its series stale."""
    w = window_seconds(start, end, 1)
    return f"min_over_time(max({prom.crdb('liveness_livenodes')})[{w}s:{max(1, int(step))}s] {at(end)})"


def instant(prom: PrometheusResource, agg: str, metric: str, end: float) -> str:
    return f"{agg}({prom.crdb(metric)} {at(end)})"
