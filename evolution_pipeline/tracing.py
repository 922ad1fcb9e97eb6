"""Traces of the evolution: one trace per Dagster run, one span per phase step and per asset check.

Configured by the same OTEL_* variables as the sample app (crdb_common/otel.py, the small package both
read: the pipeline never imports the app) and off, with every wrapper a plain call, when no OTLP endpoint is set.

One trace per run across processes: the trace id IS the Dagster run id (a UUID is 128 bits, like a
W3C trace id), so the steps of a run land in one trace whichever process or pod runs them, and the
run id read in Dagster's UI finds its trace in Tempo/Jaeger as is (dashes dropped). Every span is
the child of one run-level parent span id derived from the run id (not itself exported: no single
process sees a run from start to end), and carries dagster.run_id, dagster.job and dagster.op.

Step spans carry the phase, its node count and the node count the step found (crdb.nodes.target /
crdb.nodes.before / crdb.nodes.after), the replication the phase asks for, and the step's timings
from PhaseState. A step that raises gets an ERROR status and the exception event. Each step ends with
a bounded flush: a step process may exit right after, and an endpoint that is down costs a step at
most FLUSH_SECONDS.

Hooks (the only places the pipeline calls in here), each given the Phase its op or check closes over:
    phase_op:     dg.op(...)(traced_step(step, phase)(fn))      evolution_pipeline/ops/common.py
    phase checks: traced_check(name, phase)(judge), one per check of the phase's multi-asset check
                  evolution_pipeline/checks.py
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from crdb_common.otel import provider_from_env

from .phases import Phase
from .state import PhaseState

log = logging.getLogger(__name__)
SERVICE = "crdb-evolution-pipeline"
FLUSH_SECONDS = 2.0
_UNSET = object()
_provider: Any = _UNSET
_lock = threading.Lock()


def provider():
    """The process's TracerProvider, built once from the environment; None when tracing is off."""
    global _provider
    with _lock:
        if _provider is _UNSET:
            _provider = provider_from_env(SERVICE)
        return _provider


def use_provider(new) -> None:
    """Replace the process's provider (tests; or None to turn tracing off)."""
    global _provider
    with _lock:
        _provider = new


def run_context(run_id: str) -> trace.Context:
    """The run's trace: trace id = the run id's 128 bits; one fixed parent span id per run."""
    try:
        trace_id = uuid.UUID(run_id).int
    except ValueError:  # not a UUID (a test's ephemeral id): hash it into one
        trace_id = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big")
    span_id = int.from_bytes(hashlib.sha256(b"run:" + run_id.encode()).digest()[:8], "big") or 1
    parent = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _op_context(context):
    # An asset check's AssetCheckExecutionContext wraps the op context that has the run's facts.
    return getattr(context, "op_execution_context", context)


def _dagster_attributes(context) -> dict[str, Any]:
    context = _op_context(context)
    attributes = {"dagster.run_id": context.run_id}
    for key, read in (("dagster.job", lambda: context.job_name), ("dagster.op", lambda: context.op_def.name)):
        try:
            attributes[key] = read()
        except Exception:  # noqa: BLE001 - a context without it (direct invocation) just omits it
            pass
    return attributes


def _phase_attributes(state: PhaseState | None, phase: Phase, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {} if state is None else {f"crdb.nodes.{prefix}": state.nodes}
    out.update(
        {
            "crdb.phase": phase.name,
            "crdb.nodes.target": phase.nodes,
            "crdb.data.voters": phase.expected_data_voters,
            "crdb.data.non_voters": phase.expected_data_non_voters,
            "crdb.system.voters": phase.expected_system_voters,
            "crdb.failures_tolerated": phase.failures_tolerated,
        }
    )
    return out


def _input_state(args: tuple, kwargs: dict) -> PhaseState | None:
    return next((a for a in (*args, *kwargs.values()) if isinstance(a, PhaseState)), None)


@contextmanager
def _span(tracer, name: str, context, attributes: dict[str, Any]):
    started = time.monotonic()
    with tracer.start_as_current_span(
        name, context=run_context(_op_context(context).run_id), kind=SpanKind.INTERNAL, attributes=attributes,
        record_exception=True, set_status_on_exception=True,
    ) as span:
        yield span
        span.set_attribute("crdb.step.seconds", round(time.monotonic() - started, 3))


def traced_step(step: str, phase: Phase) -> Callable[[Callable], Callable]:
    """Wrap an op body: a span named after the step, in the run's trace, about the op's own phase."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(context, *args, **kwargs):
            current = provider()
            if current is None:
                return fn(context, *args, **kwargs)
            before = _input_state(args, kwargs)
            attributes = {
                **_dagster_attributes(context),
                "crdb.step": step,
                "dagster.retry_number": getattr(_op_context(context), "retry_number", 0),
                **_phase_attributes(before, phase, "before"),
            }
            try:
                with _span(current.get_tracer(__name__), step, context, attributes) as span:
                    result = fn(context, *args, **kwargs)
                    _annotate_result(span, step, result)
                    return result
            finally:
                flush(current)

        wrapper.__traced_as__ = step
        return _same_signature(wrapper, fn)

    return wrap


def _annotate_result(span, step: str, result: Any) -> None:
    if not isinstance(result, PhaseState):
        return
    span.set_attribute("crdb.nodes.after", result.nodes)
    if step in result.timings:
        span.set_attribute("crdb.step.timing_seconds", result.timings[step])
    if result.converge_seconds is not None:
        span.set_attribute("crdb.converge_seconds", result.converge_seconds)
    if result.backup is not None:
        span.set_attribute("crdb.backup.status", result.backup.status)


def traced_check(name: str, phase: Phase) -> Callable[[Callable], Callable]:
    """Wrap one check's body: a span "check <name>" in the run's trace, ERROR when it fails. Safe in a worker
    thread (the phase's checks run concurrently): the span's parent is the run's, passed explicitly."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(context, *args, **kwargs):
            current = provider()
            if current is None:
                return fn(context, *args, **kwargs)
            state = _input_state(args, kwargs)
            attributes = {**_dagster_attributes(context), "crdb.check": name,
                          **_phase_attributes(state, phase, "after")}
            try:
                with _span(current.get_tracer(__name__), f"check {name}", context, attributes) as span:
                    result = fn(context, *args, **kwargs)
                    passed = getattr(result, "passed", None)
                    if passed is not None:
                        span.set_attribute("crdb.check.passed", bool(passed))
                        if not passed:
                            span.set_status(Status(StatusCode.ERROR, (getattr(result, "description", "") or "")[:200]))
                    return result
            finally:
                flush(current)

        wrapper.__traced_as__ = f"check {name}"
        return _same_signature(wrapper, fn)

    return wrap


def traced_as(fn: Callable) -> str | None:
    """The step or check name a function was wrapped for ("scale", "check live_nodes_match_phase"), else None."""
    return getattr(fn, "__traced_as__", None)


def _same_signature(wrapper: Callable, fn: Callable) -> Callable:
    # Dagster reads the op's parameters and their annotations (config class, inputs) from the signature;
    # evaluated here against fn's own module, since string annotations would otherwise be looked up in this one.
    wrapper.__signature__ = inspect.signature(fn, eval_str=True)
    return wrapper


def flush(current, seconds: float = FLUSH_SECONDS) -> None:
    """Export what is queued before the step's process may exit; never wait longer than `seconds`."""
    worker = threading.Thread(target=current.force_flush, daemon=True, name="trace-flush")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        log.warning("trace export did not finish within %ss: the step goes on without it", seconds)
