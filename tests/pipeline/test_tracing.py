"""The pipeline's traces for a stand-in run: a small Dagster graph whose ops and asset checks are wrapped
the way phase_op / build_phase_checks wrap the real ones (each closing over its phase; the checks in one
concurrent step, check_steps.py), exported over real OTLP/HTTP to a receiver on 127.0.0.1 (and nothing at all
without an endpoint)."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from crdb_common.otel import provider_from_env
from evolution_pipeline import tracing
from evolution_pipeline.check_steps import Check, checks_step
from evolution_pipeline.phases import get_phase
from evolution_pipeline.state import PhaseState
from tests.support.otlp import OtlpReceiver

PHASE = get_phase("phase1_two_nodes")


@dg.op(out=dg.Out(PhaseState))
@tracing.traced_step("preflight", PHASE)
def preflight(context: dg.OpExecutionContext) -> PhaseState:
    return PhaseState(phase=PHASE.name, nodes=1, data=PHASE.data, system=PHASE.system, run_id=context.run_id)


@dg.op
@tracing.traced_step("scale", PHASE)
def scale(context: dg.OpExecutionContext, state: PhaseState) -> PhaseState:
    return PhaseState(
        phase=state.phase, nodes=PHASE.nodes, data=state.data, system=state.system, timings={"scale": 1.5}
    )


@dg.op
@tracing.traced_step("verify_replication", PHASE)
def verify(context: dg.OpExecutionContext, state: PhaseState) -> PhaseState:
    raise dg.Failure("ranges never converged")


@dg.graph_asset
def phase_asset() -> PhaseState:
    return scale(preflight())


@tracing.traced_check("live_nodes_match_phase", PHASE)
def _live_nodes(context, state: PhaseState) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=state.nodes == 3, description="2 live, expected 3")


@tracing.traced_check("no_unavailable_ranges", PHASE)
def _available(context, state: PhaseState) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, description="0 unavailable")


# Two checks in one step, each judged in its own worker thread, as the phase checks are.
live_nodes = checks_step(phase_asset.key, [Check("live_nodes_match_phase", "live nodes", _live_nodes),
                                           Check("no_unavailable_ranges", "unavailable", _available)],
                         description="the toy phase's checks")


@pytest.fixture()
def receiver(monkeypatch):
    r = OtlpReceiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    tracing.use_provider(provider_from_env(tracing.SERVICE))
    yield r
    tracing.provider().shutdown()
    tracing.use_provider(None)
    r.close()


def test_one_trace_per_run_with_a_span_per_step_and_check(receiver):
    result = dg.materialize([phase_asset, live_nodes], raise_on_error=False)
    run_id = result.run_id
    wanted = {"preflight", "scale", "check live_nodes_match_phase", "check no_unavailable_ranges"}
    spans = receiver.wait_for(lambda s: wanted <= {x.name for x in s})
    assert {s.trace_id for s in spans} == {uuid.UUID(run_id).hex}, "the trace id is the run id"
    assert len({s.parent_span_id for s in spans}) == 1, "every span hangs off the run"
    by_name = {s.name: s for s in spans}
    for span in spans:
        assert span.attributes["dagster.run_id"] == run_id and span.resource["service.name"] == tracing.SERVICE
        assert span.attributes["crdb.phase"] == PHASE.name and span.attributes["crdb.nodes.target"] == 2
    pre, sc = by_name["preflight"], by_name["scale"]
    assert pre.attributes["dagster.op"].endswith("preflight") and pre.attributes["crdb.nodes.after"] == 1
    assert sc.attributes["crdb.nodes.before"] == 1 and sc.attributes["crdb.nodes.after"] == 2
    assert sc.attributes["crdb.step.timing_seconds"] == 1.5 and sc.attributes["crdb.data.non_voters"] == 1
    assert pre.end_ns <= sc.start_ns
    check = by_name["check live_nodes_match_phase"]
    assert check.attributes["crdb.check.passed"] is False and check.status_code == 2  # STATUS_CODE_ERROR
    assert check.attributes["crdb.nodes.after"] == 2 and check.attributes["crdb.nodes.target"] == 2
    assert by_name["check no_unavailable_ranges"].attributes["crdb.check.passed"] is True


def test_a_failing_step_is_an_error_span():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    try:

        @dg.job
        def failing():
            verify(scale(preflight()))

        result = failing.execute_in_process(raise_on_error=False)
    finally:
        tracing.use_provider(None)
    assert not result.success
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"preflight", "scale", "verify_replication"}
    failed = spans["verify_replication"]
    assert failed.status.status_code.name == "ERROR" and any(e.name == "exception" for e in failed.events)


def test_no_endpoint_no_spans_and_the_ops_run_unchanged(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    tracing.use_provider(tracing._UNSET)  # rebuilt from the environment on first use
    try:
        result = dg.materialize([phase_asset, live_nodes], raise_on_error=False)
        assert tracing.provider() is None
    finally:
        tracing.use_provider(None)
    assert result.output_for_node("phase_asset").nodes == 2


def test_every_phase_step_of_every_environment_is_traced():
    """phase_op wraps each step (evolution_pipeline/ops/common.py): removing the hook fails here."""
    from evolution_pipeline.environments import ENVIRONMENTS
    from evolution_pipeline.ops import build_ops
    from evolution_pipeline.phases import PHASES

    for env in ENVIRONMENTS:
        for phase in PHASES:
            ops = build_ops(env, phase)
            for step in ("preflight", "backup", "scale", "apply_sql", "verify_replication"):
                assert tracing.traced_as(getattr(ops, step).compute_fn.decorated_fn) == step, (env.name, step)
