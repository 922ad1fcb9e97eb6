"""PromQL pinned to a past time window with the `@` modifier (Prometheus >= 2.25, on by default since 2.33).

A drill's checks and the rehearsal report judge what happened between two instants, whenever they run: the
window ends at `@ <end>` and reaches back `[<seconds>s]`, so a check re-executed later still judges the drill.
"""

from __future__ import annotations

import math

from ..resources.prometheus import PrometheusResource


def window_seconds(start: float, end: float, minimum: int) -> int:
    """Seconds from start to end, at least `minimum` (increase() needs two samples inside its range)."""
    return max(int(minimum), math.ceil(end - start))


def at(end: float) -> str:
    return f"@ {end:.3f}"


def requests(prom: PrometheusResource, start: float, end: float, errors_only: bool = False) -> str:
    extra = f'route=~"{prom.app_routes}"' + (',status=~"5.."' if errors_only else "")
    w = window_seconds(start, end, prom.min_window_seconds)
    return f"sum(increase({prom.app('app_requests_total', extra)}[{w}s] {at(end)}))"


def error_ratio(prom: PrometheusResource, start: float, end: float) -> str:
    # `or vector(0)`: no 5xx series at all means no errors, not "no data" (as in checks._app_errors).
    return f"({requests(prom, start, end, errors_only=True)} or vector(0)) / {requests(prom, start, end)}"


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
