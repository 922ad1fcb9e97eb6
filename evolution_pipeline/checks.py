"""Blocking asset checks on Prometheus, one set per phase and environment.

They judge what the audience sees on the dashboards: no under-replicated or unavailable ranges, the
phase's node count live, and the sample app kept serving through the phase. Each judges the phase's own
minutes, pinned to its state's start and end with PromQL's `@` (a check re-executed tomorrow judges the same
window, not the minutes before it ran). A check never passes by
default: Prometheus unreachable or a query without series fails it, with the reason. A failed blocking
check stops the later phases of the run. A phase's checks (these five and latency.py's) are one step that
evaluates them concurrently (check_steps.py).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from . import app_promql as promql
from .app_promql import Window
from .check_steps import Check, checks_step
from .environments import ENVIRONMENTS, Environment
from .latency import CHECK_NAME as LATENCY_CHECK
from .latency import DESCRIPTION as LATENCY_DESCRIPTION
from .latency import evaluate as evaluate_latency
from .phases import PHASES, Phase
from .resources.grafana import GrafanaResource
from .resources.prometheus import PrometheusQueryError, PrometheusResource, Reading
from .state import PhaseState
from .tracing import traced_check


@dataclass(frozen=True)
class CheckSpec:
    name: str
    description: str
    # (prometheus, phase, state) -> (query at a given instant, predicate on the value, expectation text)
    build: Callable[[PrometheusResource, Phase, PhaseState], tuple[Callable[[float], str], Callable[[float], bool], str]]
    # Cluster gauges lag the cluster by a scrape or two: the first instant in the settle window after the
    # phase ended at which the gauge met the expectation passes. Windowed app ratios are judged once, over
    # the phase's window (only missing data is waited for).
    settle: bool = True


def app_window(prom: PrometheusResource, state: PhaseState) -> Window:
    """The minutes a phase's checks judge, pinned to the phase run's own start and end (a check re-executed
    later, or in another run, judges the same minutes): since the app could serve (or the phase started) until
    the phase ended, at least min_window_seconds: a phase that ends sooner is judged until the app has served
    that long (phase 0 on a fresh cluster)."""
    start = state.app_serving_since or state.started_at
    return Window.at_least(start, state.finished_at or start, prom.min_window_seconds)


def _underreplicated(prom, phase, state):
    return lambda t: f"sum({prom.crdb('ranges_underreplicated')} {promql.at(t)})", lambda v: v == 0, "== 0"


def _unavailable(prom, phase, state):
    return lambda t: f"sum({prom.crdb('ranges_unavailable')} {promql.at(t)})", lambda v: v == 0, "== 0"


def _live_nodes(prom, phase, state):
    # liveness_livenodes is 0 on a node that is not itself live, hence min() as in the official dashboards.
    return (lambda t: f"min({prom.crdb('liveness_livenodes')} {promql.at(t)})", lambda v: v == phase.nodes,
            f"== {phase.nodes}")


def _app_traffic(prom, phase, state):
    w = app_window(prom, state)
    return lambda _: promql.requests(prom, w.start, w.end), lambda v: v > 0, "> 0 requests"


def _app_errors(prom, phase, state):
    w = app_window(prom, state)
    query = promql.error_ratio(prom, w.start, w.end)
    return (lambda _: query, *promql.within_error_budget(prom, phase.budgets.error_budget(prom.app_error_budget)))


CHECKS = (
    CheckSpec("no_underreplicated_ranges", "No range has fewer replicas than its zone config asks for.",
              _underreplicated),
    CheckSpec("no_unavailable_ranges", "No range has lost quorum.", _unavailable),
    CheckSpec("live_nodes_match_phase", "min(liveness_livenodes) equals the phase's node count.", _live_nodes),
    CheckSpec("sample_app_kept_serving", "The sample app's request counter grew during the phase.",
              _app_traffic, settle=False),
    CheckSpec("sample_app_error_budget", "The sample app's 5xx ratio during the phase stayed within budget.",
              _app_errors, settle=False),
)


def _wait_for(instant: float) -> None:
    """A pinned query about an instant still to come waits for it (a check run right after its phase)."""
    if (ahead := instant - time.time()) > 0:
        time.sleep(ahead)


def _settled(prom: PrometheusResource, query_at, ok, since: float) -> tuple[bool, Reading | None, str, float]:
    """The first instant from `since` to since + check_settle_seconds, every check_poll_seconds, at which the
    gauge met `ok`: (passed, reading, error, instant). The instants are fixed by the phase, so judging later
    gives the same answer."""
    reading, error, t = None, "", since
    while t <= since + prom.check_settle_seconds:
        _wait_for(t)
        try:
            reading, error = prom.query_value(query_at(t)), ""
            if ok(reading.value):
                return True, reading, "", t
        except PrometheusQueryError as exc:
            error = str(exc)
        t += prom.check_poll_seconds
    return False, reading, error, t - prom.check_poll_seconds


def evaluate(spec: CheckSpec, prom: PrometheusResource, grafana: GrafanaResource, phase: Phase,
             state: PhaseState) -> dg.AssetCheckResult:
    query_at, ok, expectation = spec.build(prom, phase, state)
    if spec.settle:
        start = end = state.finished_at or state.started_at
        passed, reading, error, judged = _settled(prom, query_at, ok, end)
    else:
        window = app_window(prom, state)
        start, end = window.start, window.end
        _wait_for(judged := end)
        passed, reading, error = prom.wait_until(query_at(end), ok, timeout=prom.check_settle_seconds,
                                                 interval=prom.check_poll_seconds, retry_failed_values=False)
    metadata: dict = {"query": dg.MetadataValue.text(query_at(judged)), "expected": expectation,
                      "prometheus": dg.MetadataValue.url(prom.url),
                      "window_start": dg.MetadataValue.timestamp(start),
                      "window_end": dg.MetadataValue.timestamp(end),
                      "judged_at": dg.MetadataValue.timestamp(judged)}
    if reading is not None:
        metadata["value"] = dg.MetadataValue.float(float(reading.value))
        metadata["series"] = reading.series
    if error:
        metadata["error"] = dg.MetadataValue.text(error)
    link = grafana.link(state.started_at, max(state.finished_at or state.started_at, end))
    if link:
        metadata["grafana"] = dg.MetadataValue.url(link)
    description = _describe(spec, phase, passed, reading, error, expectation)
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata,
                               description=description)


def _describe(spec, phase, passed, reading: Reading | None, error: str, expectation: str) -> str:
    if passed:
        return f"{spec.name}: {reading.value:g} {expectation} for {phase.name}"
    if error:
        return f"{spec.name} FAILED for {phase.name}: {error}"
    return f"{spec.name} FAILED for {phase.name}: value {reading.value:g}, expected {expectation}"


def build_checks(env: Environment) -> list[dg.AssetChecksDefinition]:
    return [build_phase_checks(env, phase) for phase in PHASES]


def build_phase_checks(env: Environment, phase: Phase) -> dg.AssetChecksDefinition:
    """The phase's six blocking checks as one step (check_steps.py: concurrent, each can run alone), every
    judge closing over its phase and traced as its own span."""
    checks = [Check(spec.name, spec.description, traced_check(spec.name, phase)(_judge(spec, phase)))
              for spec in CHECKS]
    # The latency gate judges the same phase window as the app's error checks (latency.py).
    checks.append(Check(LATENCY_CHECK, LATENCY_DESCRIPTION, traced_check(LATENCY_CHECK, phase)(
        lambda _context, state, prom, grafana: evaluate_latency(prom, grafana, env.name, phase, state,
                                                                app_window(prom, state)))))
    return checks_step(env.asset_key(phase), checks,
                       resource_keys=(env.resource_key("prometheus"), env.resource_key("grafana")),
                       description=f"The blocking checks of {phase.title} ({env.name}), run concurrently "
                                   "in one step; select one to run it alone.")


def _judge(spec: CheckSpec, phase: Phase):
    def judge(_context, state: PhaseState, prom: PrometheusResource, grafana: GrafanaResource):
        return evaluate(spec, prom, grafana, phase, state)

    return judge


def all_checks() -> list[dg.AssetChecksDefinition]:
    from .drills import drill_checks  # the drills' and the report's blocking checks

    return [check for env in ENVIRONMENTS for check in build_checks(env)] + drill_checks()
