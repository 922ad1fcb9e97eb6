"""Prometheus, through prometheus-api-client, scoped to one cluster's scrape jobs.

Every query the pipeline runs goes through `selector()`, so checks never read another cluster's series.
Unreachable Prometheus and empty results are errors, never a silent pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dagster as dg
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry


class PrometheusQueryError(RuntimeError):
    """Prometheus could not answer, or answered with no series: a check must fail on this."""


@dataclass(frozen=True)
class Reading:
    query: str
    value: float
    series: int


class PrometheusResource(dg.ConfigurableResource):
    url: str = "http://127.0.0.1:9090"
    # Scrape job names and the `cluster` label, as in the scrape configs (k8s/observability, grafana/local).
    crdb_job: str = "cockroachdb"
    app_job: str = "sample-app"
    cluster_label: str = "crdb-live"
    timeout_seconds: float = 10.0
    # Blocking checks: how long cluster metrics may take to settle after a phase, and the app's budget.
    check_settle_seconds: float = 60.0
    check_poll_seconds: float = 3.0
    min_window_seconds: int = 60
    app_routes: str = "/login|/search"
    app_error_budget: float = 0.01
    # The latency gate (latency.py, which says why these defaults): phase p99 <= ratio x baseline p99 + slack.
    app_latency_ratio: float = 2.0
    app_latency_slack_seconds: float = 0.010

    def selector(self, job: str, extra: str = "") -> str:
        parts = [f'job="{job}"', f'cluster="{self.cluster_label}"']
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}"

    def crdb(self, metric: str) -> str:
        return f"{metric}{self.selector(self.crdb_job)}"

    def app(self, metric: str, extra: str = "") -> str:
        return f"{metric}{self.selector(self.app_job, extra)}"

    def _client(self) -> PrometheusConnect:
        # The checks poll on their own (wait_until, the settle window), so one query retries only briefly:
        # the client's default (3 retries, backoff factor 1) spends 6 s on every query to a Prometheus that
        # is down, and the checks would take minutes to say so. The HTTP timeout bounds a Prometheus that
        # accepts the connection and never answers (the client has none by default).
        retry = Retry(total=2, backoff_factor=0.1, status_forcelist=[408, 429, 500, 502, 503, 504])
        return PrometheusConnect(url=self.url, disable_ssl=not self.url.startswith("https"), retry=retry,
                                 timeout=self.timeout_seconds + 5)

    def query_value(self, expr: str) -> Reading:
        """Evaluate an instant query that must return at least one series; sum them into one value."""
        try:
            result = self._client().custom_query(query=expr, params={"timeout": f"{self.timeout_seconds:g}s"})
        except PrometheusApiClientException as exc:
            raise PrometheusQueryError(f"Prometheus at {self.url} rejected `{expr}`: {exc}") from exc
        except Exception as exc:  # requests' connection errors, timeouts, bad JSON
            raise PrometheusQueryError(f"Prometheus at {self.url} is unreachable for `{expr}`: {exc}") from exc
        if not result:
            raise PrometheusQueryError(
                f"`{expr}` returned no series: is Prometheus scraping job(s) {self.crdb_job!r}/{self.app_job!r} "
                f"with cluster={self.cluster_label!r}? (see grafana/README.md, troubleshooting)"
            )
        value = sum(float(series["value"][1]) for series in result)
        return Reading(expr, value, len(result))

    def wait_until(self, expr: str, ok, timeout: float, interval: float = 2.0,
                   retry_failed_values: bool = True) -> tuple[bool, Reading | None, str]:
        """Poll `expr` until `ok(value)`; returns (passed, last reading, last error).

        Missing data is always retried until the timeout (a fresh series needs a scrape or two); a value
        that fails `ok` is retried only with retry_failed_values (gauges that settle, not error ratios).
        """
        deadline = time.monotonic() + timeout
        reading, error = None, ""
        while True:
            try:
                reading = self.query_value(expr)
                error = ""
                if ok(reading.value):
                    return True, reading, ""
                if not retry_failed_values:
                    return False, reading, ""
            except PrometheusQueryError as exc:
                error = str(exc)
            if time.monotonic() >= deadline:
                return False, reading, error
            time.sleep(interval)
