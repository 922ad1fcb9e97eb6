"""OpenTelemetry tracing set up from the standard OTEL_* variables; shared by the app and the pipeline.

Off unless an OTLP endpoint is set (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT):
then no provider, no exporter, no thread exists and callers skip every tracing call. On, spans go out
over OTLP/HTTP protobuf in batches from a background thread, through a queue that never grows past
OTEL_BSP_MAX_QUEUE_SIZE (default 2048): a span that finds it full is dropped and counted, so an
endpoint that is slow or down costs memory and requests nothing. Export failures are logged once per
outage (the exporter's own per-batch error lines are held back) and counted.

The variables (OpenTelemetry SDK environment specification): OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT / _PROTOCOL (only http/protobuf here) / _HEADERS / _TIMEOUT /
_COMPRESSION, OTEL_TRACES_SAMPLER + OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_*, OTEL_SDK_DISABLED,
OTEL_TRACES_EXPORTER (only otlp or none). A value the SDK would silently replace by a default (an
unknown sampler, a ratio outside [0, 1]) is refused here with the variable's name instead.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from . import redact

log = logging.getLogger(__name__)

PROTOCOL = "http/protobuf"
DEFAULT_QUEUE = 2048  # the SDK's own OTEL_BSP_MAX_QUEUE_SIZE default
# Loggers whose per-batch export errors OneTimeFailureLog replaces with one line per outage (a logger's
# filters see only records logged on that very logger: these are the modules that log them).
EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
)


class TracingConfigError(ValueError):
    """A tracing variable with a value that cannot work; the message names it."""


def endpoint(env: Mapping[str, str]) -> str | None:
    """The OTLP/HTTP traces URL, or None when tracing is off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter == "none":
        return None
    if exporter != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER must be otlp or none, got {exporter!r}")
    if url := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        return url  # the signal URL, used as given (SDK specification)
    if base := env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return base.rstrip("/") + "/v1/traces"
    return None


def check_protocol(env: Mapping[str, str]) -> None:
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or PROTOCOL)
    if protocol.strip() != PROTOCOL:
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: set it to {PROTOCOL} "
            "(port 4318 on a collector, Tempo or Jaeger)"
        )


def sampler_from_env(env: Mapping[str, str]) -> Sampler:
    """OTEL_TRACES_SAMPLER (default parentbased_always_on) and its ratio argument, validated."""
    name = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    fixed = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
    }
    if name in fixed:
        return fixed[name]
    if name not in ("traceidratio", "parentbased_traceidratio"):
        raise TracingConfigError(
            f"OTEL_TRACES_SAMPLER={name!r} is not supported: use one of "
            f"{', '.join([*fixed, 'traceidratio', 'parentbased_traceidratio'])}"
        )
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, got {raw!r}")
    ratio_sampler = TraceIdRatioBased(ratio)
    return ratio_sampler if name == "traceidratio" else ParentBased(ratio_sampler)


def root_ratio(env: Mapping[str, str]) -> float:
    """The share of requests without a parent that the configured sampler keeps (every sampler here
    decides a root by a fixed ratio: always_on 1, always_off 0, the ratio ones their argument)."""
    name = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if name.endswith("always_on"):
        return 1.0
    if name.endswith("always_off"):
        return 0.0
    return float(env.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))  # validated by sampler_from_env


def queue_size(env: Mapping[str, str]) -> int:
    return positive_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_QUEUE)


# The batch processor's integer variables: the SDK logs a traceback for a non-integer and starts with its
# default, and raises (a traceback at start-up) for 0 or less. Refused here with the variable's name instead.
BSP_INTEGERS = {"OTEL_BSP_SCHEDULE_DELAY": 5000, "OTEL_BSP_EXPORT_TIMEOUT": 30000,
                "OTEL_BSP_MAX_QUEUE_SIZE": DEFAULT_QUEUE, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 512}
OTLP_TIMEOUTS = ("OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")


def positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw.strip():
        return default
    if not raw.strip().isdigit() or int(raw) < 1 or len(raw.strip()) > 9:
        raise TracingConfigError(f"{name} must be a positive integer (at most 9 digits), got {raw[:40]!r}")
    return int(raw)


def check_numbers(env: Mapping[str, str]) -> None:
    for name, default in BSP_INTEGERS.items():
        positive_int(env, name, default)
    for name in OTLP_TIMEOUTS:  # seconds, a number
        raw = env.get(name, "").strip()
        try:
            ok = not raw or 0 < float(raw) < 86400
        except ValueError:
            ok = False
        if not ok:
            raise TracingConfigError(f"{name} must be a number of seconds above 0, got {raw[:40]!r}")


def check_propagators(env: Mapping[str, str]) -> None:
    """OTEL_PROPAGATORS names installed propagators (or none): opentelemetry.propagate loads them when it is
    imported and raises ValueError for an unknown name, a traceback before the app could say which variable."""
    configured = env.get("OTEL_PROPAGATORS", "").strip()
    if not configured:
        return
    from importlib.metadata import entry_points

    known = {ep.name for ep in entry_points(group="opentelemetry_propagator")}
    for name in (n.strip() for n in configured.split(",")):
        if name.lower() != "none" and name not in known:
            raise TracingConfigError(f"OTEL_PROPAGATORS names {name[:40]!r}, which is not installed: use "
                                     f"{', '.join(sorted(known | {'none'}))}")


def resource(env: Mapping[str, str], default_service: str) -> Resource:
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME from os.environ; ours wins
    # only when neither names the service (the SDK would say "unknown_service").
    attributes = {}
    named = "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "") or env.get("OTEL_SERVICE_NAME")
    if not named:
        attributes[SERVICE_NAME] = default_service
    return Resource.create(attributes)


class Outcomes:
    """Where the export path reports what it lost (the app feeds Prometheus counters from these)."""

    def __init__(
        self, dropped: Callable[[str, int], None] | None = None, failed: Callable[[], None] | None = None
    ):
        self.dropped = dropped or (lambda reason, n: None)
        self.failed = failed or (lambda: None)


class OneTimeFailureLog(logging.Filter):
    """Holds back the exporter's per-batch error lines, keeping the newest for our one-per-outage line."""

    def __init__(self) -> None:
        super().__init__()
        self.last = ""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            self.last = record.getMessage()
            return False
        return True


class CountingExporter(SpanExporter):
    """Delegates to the OTLP exporter; counts spans it was given and failures, logs an outage once."""

    def __init__(self, inner: SpanExporter, target: str, outcomes: Outcomes, taken: Callable[[int], None]):
        self.inner = inner
        self.target = target
        self.outcomes = outcomes
        self.taken = taken
        self.failing = False
        self.reasons = OneTimeFailureLog()
        for name in EXPORTER_LOGGERS:
            logging.getLogger(name).addFilter(self.reasons)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.taken(len(spans))
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - an exporter bug must not kill the batch thread
            self.reasons.last, result = str(exc), SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            if self.failing:
                log.warning("trace export to %s works again", self.target)
            self.failing = False
            return result
        self.outcomes.failed()
        self.outcomes.dropped("export_failed", len(spans))
        if not self.failing:
            log.warning(
                "trace export to %s failed (%s): spans are dropped and counted until it recovers; "
                "requests are not affected",
                self.target,
                redact.url(self.reasons.last or "no reason given"),
            )
        self.failing = True
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()
        for name in EXPORTER_LOGGERS:
            logging.getLogger(name).removeFilter(self.reasons)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class BoundedBatchProcessor(SpanProcessor):
    """The SDK's BatchSpanProcessor behind a count of queued spans: past `limit` a span is dropped here
    (and counted) instead of inside the SDK, where a full queue drops silently."""

    def __init__(self, exporter: SpanExporter, target: str, limit: int, outcomes: Outcomes):
        self.limit = limit
        self.outcomes = outcomes
        self._lock = threading.Lock()
        self._queued = 0
        self.exporter = CountingExporter(exporter, target, outcomes, self._taken)
        # The SDK refuses a batch larger than its queue: a small OTEL_BSP_MAX_QUEUE_SIZE caps the batch too.
        batch = positive_int(os.environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)  # validated at start-up
        self.batch = BatchSpanProcessor(self.exporter, max_queue_size=limit, max_export_batch_size=min(batch, limit))

    def _taken(self, n: int) -> None:
        with self._lock:
            self._queued -= n

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        with self._lock:
            full = self._queued >= self.limit
            if not full:
                self._queued += 1
        if full:
            self.outcomes.dropped("queue_full", 1)
            return
        self.batch.on_end(span)

    def shutdown(self) -> None:
        self.batch.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.batch.force_flush(timeout_millis)


def validate(env: Mapping[str, str] | None = None) -> str | None:
    """Check every tracing variable at start-up; the endpoint, or None when tracing is off."""
    env = os.environ if env is None else env
    check_propagators(env)  # read on import of opentelemetry.propagate, tracing on or off
    url = endpoint(env)
    if url is not None:
        check_protocol(env)
        sampler_from_env(env)
        check_numbers(env)
    return url


def provider_from_env(
    default_service: str,
    outcomes: Outcomes | None = None,
    env: Mapping[str, str] | None = None,
    sampler: Callable[[Sampler], Sampler] | None = None,
) -> TracerProvider | None:
    """A TracerProvider exporting over OTLP/HTTP, or None (tracing off) when no endpoint is set.

    `sampler` may wrap the sampler the variables ask for (the app samples its load engine apart).
    """
    env = os.environ if env is None else env
    url = endpoint(env)
    if url is None:
        return None
    check_protocol(env)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = sampler_from_env(env)
    provider = TracerProvider(
        sampler=sampler(base) if sampler else base, resource=resource(env, default_service), shutdown_on_exit=False
    )
    shown = redact.url(url)  # an endpoint may carry user info (http://user:TOKEN@collector:4318)
    processor = BoundedBatchProcessor(OTLPSpanExporter(endpoint=url), shown, queue_size(env), outcomes or Outcomes())
    provider.add_span_processor(processor)
    log.info("tracing on: OTLP/HTTP to %s, sampler %s", shown, provider.sampler.get_description())
    return provider
