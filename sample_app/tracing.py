"""The app's traces: a SERVER span per HTTP request, a CLIENT span per database statement, and a root
span per sampled load-engine request. Built only when crdb_common.otel finds an OTLP endpoint; with none,
create_app registers no tracing middleware and the database and load paths skip tracing with one
`is None` test each, so tracing off costs nothing measurable (bench/app_throughput.py --tracing off).

Names follow the OpenTelemetry semantic conventions (stable HTTP and database conventions):
span "GET /search" with http.request.method, http.route, url.path, url.scheme, server.address,
server.port, network.protocol.version, client.address, user_agent.original, http.response.status_code
and error.type for 5xx; a W3C `traceparent` on the request makes the span its child (the propagator
OTEL_PROPAGATORS configures, tracecontext + baggage by default). Database spans "SELECT search_terms"
with db.system.name and db.system = postgresql (CockroachDB speaks its wire protocol), db.operation.name,
db.collection.name, db.query.text (the parameterized text, never values), server.address/port and
db.client.connection.pool.name = writer | reader; only as children of a sampled request, never as roots.

Sampling: HTTP requests follow OTEL_TRACES_SAMPLER. The load engine (spikes, background, readers,
writers loads) runs in-process at up to APP_SPIKE_MAX_RPS with no HTTP in front: each load run samples
its requests at LOAD_TRACES_PER_SECOND / rps (all of a 5 req/s load, 0.5 % of a 1000 req/s spike), so a
spike cannot flood the exporter.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from psycopg.conninfo import conninfo_to_dict

from crdb_common import otel

SCOPE = "sample_app"
LOAD_TRACES_PER_SECOND = 5.0
LOAD_RATIO = "app.load.sample_ratio"
# A root request already kept by Tracing.start_request's own draw: the sampler must not draw again.
PRESAMPLED = "app.sampling.presampled"
# Not traced: probes, scrapes, the page and its stream (noise, or one span as long as a browser tab).
UNTRACED_ROUTES = frozenset({"/healthz", "/metrics", "/", "/ws/timeline", "unmatched"})
_FIRST_WORDS = re.compile(r"^\s*(\w+)")
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", re.IGNORECASE)


class LoadAwareSampler(Sampler):
    """OTEL_TRACES_SAMPLER for requests; a per-load TraceIdRatio for the load engine's own roots."""

    def __init__(self, base: Sampler):
        self.base = base
        self._ratios: dict[float, Sampler] = {}

    def should_sample(
        self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
    ) -> SamplingResult:
        ratio = attributes.get(LOAD_RATIO) if attributes else None
        sampler = self.base
        if attributes and attributes.get(PRESAMPLED):
            sampler = ALWAYS_ON
        elif ratio is not None:
            sampler = self._ratios.get(ratio) or self._ratios.setdefault(ratio, TraceIdRatioBased(ratio))
        return sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"LoadAware{{requests={self.base.get_description()},load<={LOAD_TRACES_PER_SECOND:g}/s}}"


def load_ratio(rps: float) -> float:
    return min(1.0, LOAD_TRACES_PER_SECOND / rps) if rps > 0 else 1.0


def statement_summary(sql: str) -> tuple[str, str | None]:
    """("SELECT", "search_terms") for a statement: the span's name parts (db.query.summary style)."""
    op = _FIRST_WORDS.match(sql)
    table = _TABLE.search(sql)
    return (op.group(1).upper() if op else "SQL"), (table.group(1) if table else None)


class Tracing:
    """The app's tracer and the three kinds of spans it makes."""

    def __init__(self, provider: TracerProvider, db_urls: dict[str, str], root_ratio: float = 1.0):
        self.provider = provider
        # Share of requests without a traceparent to trace (otel.root_ratio). Drawn here, before the SDK:
        # an unsampled request then costs one random() instead of a span, a context and a sampler call.
        self.root_ratio = root_ratio
        self.tracer = provider.get_tracer(SCOPE)
        self._summaries: dict[str, tuple[str, dict[str, Any]]] = {}
        self._servers = {pool: _server_of(url) for pool, url in db_urls.items()}

    # --- HTTP requests (create_app's middleware)
    def start_request(self, request, route: str) -> None:
        """SERVER span for a request, made current for its handler (and so for its DB spans)."""
        if route in UNTRACED_ROUTES:
            return
        attributes = None
        if "traceparent" in request.headers:  # the caller's decision rules (parent-based samplers)
            parent = propagate.extract(request.headers)
        else:  # a root: the same Bernoulli draw a ratio sampler makes on a random trace id, only cheaper
            parent = None
            if self.root_ratio < 1.0:
                if random.random() >= self.root_ratio:
                    return
                attributes = {PRESAMPLED: True}
        method = request.method
        span = self.tracer.start_span(f"{method} {route}", context=parent, kind=SpanKind.SERVER, attributes=attributes)
        if span.is_recording():  # an unsampled request (most, when sampling) pays for none of this
            span.set_attributes(
                {
                    "http.request.method": method,
                    "http.route": route,
                    "url.path": request.path,
                    "url.scheme": request.scheme,
                    "server.address": request.server_name,
                    "server.port": request.server_port,
                    "network.protocol.version": request.version,
                    "client.address": request.ip,
                    "user_agent.original": request.headers.get("user-agent", ""),
                }
            )
        request.ctx.otel_span = span
        request.ctx.otel_token = context.attach(trace.set_span_in_context(span))

    def end_request(self, request, status: int) -> None:
        span = getattr(request.ctx, "otel_span", None)
        if span is None:
            return
        request.ctx.otel_span = None
        if span.is_recording():
            span.set_attribute("http.response.status_code", status)
            if status >= 500:  # a server span's 4xx is the client's error, not ours (HTTP conventions)
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        span.end()
        try:
            context.detach(request.ctx.otel_token)
        except ValueError:
            pass  # the handler ran in another context (a cancelled request): nothing to restore

    # --- database statements (Database.run)
    def start_statement(self, pool: str, sql: str):
        """CLIENT span for one statement attempt, or None outside a sampled request."""
        if not trace.get_current_span().is_recording():
            return None
        name, attributes = self._summary(sql)
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        span.set_attribute("db.client.connection.pool.name", pool)
        for key, value in self._servers.get(pool, {}).items():
            span.set_attribute(key, value)
        return span

    @staticmethod
    def end_statement(span, sqlstate: str | None = None, message: str = "") -> None:
        if sqlstate:
            span.set_attribute("db.response.status_code", sqlstate)
            span.set_attribute("error.type", sqlstate)
            span.set_status(Status(StatusCode.ERROR, message[:200]))
        span.end()

    def _summary(self, sql: str) -> tuple[str, dict[str, Any]]:
        cached = self._summaries.get(sql)
        if cached is None:  # the app's statements are a handful of constants: the cache stays tiny
            op, table = statement_summary(sql)
            attributes: dict[str, Any] = {
                "db.system.name": "postgresql",
                "db.system": "postgresql",
                "db.operation.name": op,
                "db.query.text": sql,
            }
            if table:
                attributes["db.collection.name"] = table
            cached = self._summaries[sql] = (f"{op} {table}" if table else op, attributes)
        return cached

    # --- the load engine (spike.LoadRun)
    @contextmanager
    def load_request(self, load: str, kind: str, rps: float) -> Iterator[Any]:
        route, method = ("/login", "POST") if kind == "login" else ("/search", "GET")
        attributes = {LOAD_RATIO: load_ratio(rps), "app.load.name": load, "http.route": route}
        with self.tracer.start_as_current_span(
            f"load {method} {route}", kind=SpanKind.INTERNAL, attributes=attributes, record_exception=False
        ) as span:
            yield span

    def shutdown(self) -> None:
        self.provider.shutdown()


def _server_of(url: str) -> dict[str, Any]:
    params = conninfo_to_dict(url)
    out: dict[str, Any] = {"server.address": str(params.get("host", "localhost")).split(",")[0]}
    port = str(params.get("port", "5432")).split(",")[0]
    if port.isdigit():
        out["server.port"] = int(port)
    return out


def from_env(metrics, db_urls: dict[str, str]) -> Tracing | None:
    """The app's Tracing, or None when no OTLP endpoint is configured (tracing off)."""
    outcomes = otel.Outcomes(
        dropped=lambda reason, n: metrics.trace_spans_dropped.labels(reason).inc(n),
        failed=metrics.trace_export_failures.inc,
    )
    provider = otel.provider_from_env("sample-app", outcomes, sampler=LoadAwareSampler)
    return None if provider is None else Tracing(provider, db_urls, otel.root_ratio(os.environ))


class TraceIdFilter(logging.Filter):
    """Adds ` trace_id=<32 hex>` to a log line written inside a sampled span (empty otherwise)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        sampled = ctx.is_valid and ctx.trace_flags.sampled  # only ids a trace backend will have
        record.trace = f" trace_id={ctx.trace_id:032x} span_id={ctx.span_id:016x}" if sampled else ""
        return True
