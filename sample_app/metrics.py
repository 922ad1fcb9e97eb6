"""Every Prometheus metric of the app, in one place (names are a shared contract: see the brief).

Each app gets its own CollectorRegistry so several apps can live in one test process. The app runs
one process per container by design, so in-process prometheus-client state is the whole truth
(no multiprocess mode needed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# The *_created series double the scrape size and no dashboard uses them.
disable_created_metrics()

ROUTES = ("/login", "/search", "/spike", "/healthz", "/readyz", "/metrics", "/")
POOLS = ("writer", "reader")
# Request latency up to the 5 s the dashboards care about, fine-grained below 100 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# pool stats provider: () -> {"writer": {"in_use": n, "idle": n, "max": n}, "reader": {...}}
PoolStats = Callable[[], dict[str, dict[str, int]]]


class _PoolCollector(Collector):
    """Reads pool usage at scrape time, so the gauge is never stale."""

    def __init__(self, stats: PoolStats):
        self.stats = stats

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "app_db_pool_connections", "Database pool connections by state", labels=["pool", "state"]
        )

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Registration asks for names before the pools exist: answer without reading stats.
        yield self._family()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = self._family()
        for pool, states in self.stats().items():
            for state in ("in_use", "idle", "max"):
                family.add_metric([pool, state], states.get(state, 0))
        yield family


class _PoolUserCollector(Collector):
    """Which SQL user each pool logs in as now (1 per pool), read at scrape time: a credential rotation
    shows as the user label changing, on every replica, and the dashboard can tell a replica left behind."""

    def __init__(self, users: Callable[[], dict[str, str]]):
        self.users = users

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("app_db_pool_user", "The SQL user each database pool logs in as (always 1)",
                                 labels=["pool", "user"])

    def describe(self) -> Iterable[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = self._family()
        for pool, user in self.users().items():
            family.add_metric([pool, user], 1)
        yield family


class AppMetrics:
    def __init__(self, pool_stats: PoolStats, pool_users: Callable[[], dict[str, str]] = dict):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "app_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "app_request_duration_seconds",
            "Request latency by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_duration = Histogram(
            "app_db_query_duration_seconds",
            "Database statement latency by pool",
            ["pool"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_errors = Counter(
            "app_db_errors_total",
            "Database errors by pool and SQLSTATE",
            ["pool", "sqlstate"],
            registry=r,
        )
        self.spike_target = Gauge("app_spike_target_rps", "Target rate of the running spike", registry=r)
        self.spike_achieved = Gauge(
            "app_spike_achieved_rps", "Completed spike requests per second (last second)", registry=r
        )
        self.spike_workers = Gauge(
            "app_spike_active_workers", "Spike requests in flight (open loop)", registry=r
        )
        # Tracing (crdb_common/otel.py): spans lost because the export queue was full or an export failed,
        # and failed export calls. Zero, and flat, while tracing is off.
        self.trace_spans_dropped = Counter(
            "app_trace_spans_dropped_total", "Finished spans not exported, by reason", ["reason"], registry=r
        )
        self.trace_export_failures = Counter(
            "app_trace_export_failures_total", "OTLP trace export calls that failed", registry=r
        )
        for reason in ("queue_full", "export_failed"):
            self.trace_spans_dropped.labels(reason)
        # 1 while the URL file of a path (APP_DB_<POOL>_URL_FILE) holds a URL the app refused to switch to (it
        # cannot log in, or its user is wrong for the path); the reason is on /readyz. 0 otherwise.
        self.credential_refused = Gauge(
            "app_credential_file_refused", "1 while a path's URL file holds a URL the app refused", ["pool"],
            registry=r,
        )
        for pool in POOLS:
            self.credential_refused.labels(pool)
        r.register(_PoolCollector(pool_stats))
        r.register(_PoolUserCollector(pool_users))
        # Known label values start at zero so dashboards show flat lines, not "no data".
        for route in ROUTES:
            self.request_duration.labels(route)
        for pool in POOLS:
            self.db_duration.labels(pool)

    def render(self) -> bytes:
        return generate_latest(self.registry)
