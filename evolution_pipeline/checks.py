"""Blocking asset checks on Prometheus, one set per phase and environment.

They judge what the audience sees on the dashboards: no under-replicated or unavailable ranges, the
phase's node count live, and the sample app kept serving through the phase. A check never passes by
default: Prometheus unreachable or a query without series fails it, with the reason. A failed blocking
check stops the later phases of the run.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from .environments import ENVIRONMENTS, Environment
from .phases import PHASES, Phase
from .resources.grafana import GrafanaResource
from .resources.prometheus import PrometheusResource, Reading
from .state import PhaseState
from .tracing import traced_check


@dataclass(frozen=True)
class CheckSpec:
    name: str
    description: str
    # (prometheus, phase, state) -> (query, predicate on the value, expectation text)
    build: Callable[[PrometheusResource, Phase, PhaseState], tuple[str, Callable[[float], bool], str]]
    # Cluster gauges lag the cluster by a scrape or two: poll them until they pass or settle_seconds run
    # out. Windowed app ratios are judged once (only missing data is waited for).
    settle: bool = True


def _underreplicated(prom, phase, state):
    return f"sum({prom.crdb('ranges_underreplicated')})", lambda v: v == 0, "== 0"


def _unavailable(prom, phase, state):
    return f"sum({prom.crdb('ranges_unavailable')})", lambda v: v == 0, "== 0"


def _live_nodes(prom, phase, state):
    # liveness_livenodes is 0 on a node that is not itself live, hence min() as in the official dashboards.
    return f"min({prom.crdb('liveness_livenodes')})", lambda v: v == phase.nodes, f"== {phase.nodes}"


def _window(prom: PrometheusResource, state: PhaseState) -> int:
    """Seconds of app history to judge, ending now: the phase, or at least min_window_seconds.

    When the app only started serving during this phase (phase 0 on a fresh cluster), wait until it has
    served for min_window_seconds, so the window never reaches back to before its database existed.
    """
    start = state.app_serving_since or state.started_at or time.time()
    if state.app_serving_since and (short := prom.min_window_seconds - (time.time() - start)) > 0:
        time.sleep(short)
    # floor: a window never reaches back past `start` (increase() only counts samples inside it).
    return max(prom.min_window_seconds, math.floor(time.time() - start))


def _app_traffic(prom, phase, state):
    sel = prom.app("app_requests_total", f'route=~"{prom.app_routes}"')
    return f"sum(increase({sel}[{_window(prom, state)}s]))", lambda v: v > 0, "> 0 requests"


def _app_errors(prom, phase, state):
    w = _window(prom, state)
    errors = prom.app("app_requests_total", f'route=~"{prom.app_routes}",status=~"5.."')
    total = prom.app("app_requests_total", f'route=~"{prom.app_routes}"')
    # `or vector(0)`: no 5xx series at all means no errors, not "no data".
    expr = f"(sum(increase({errors}[{w}s])) or vector(0)) / sum(increase({total}[{w}s]))"
    budget = prom.app_error_budget
    return expr, lambda v: v <= budget, f"<= {budget:g} (error budget)"


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


def evaluate(spec: CheckSpec, prom: PrometheusResource, grafana: GrafanaResource, phase: Phase,
             state: PhaseState) -> dg.AssetCheckResult:
    query, ok, expectation = spec.build(prom, phase, state)
    passed, reading, error = prom.wait_until(query, ok, timeout=prom.check_settle_seconds,
                                             interval=prom.check_poll_seconds, retry_failed_values=spec.settle)
    metadata: dict = {"query": dg.MetadataValue.text(query), "expected": expectation,
                      "prometheus": dg.MetadataValue.url(prom.url)}
    if reading is not None:
        metadata["value"] = dg.MetadataValue.float(float(reading.value))
        metadata["series"] = reading.series
    if error:
        metadata["error"] = dg.MetadataValue.text(error)
    link = grafana.link(state.started_at or time.time(), state.finished_at or time.time())
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
    return [_build_check(env, phase, spec) for phase in PHASES for spec in CHECKS]


def _build_check(env: Environment, phase: Phase, spec: CheckSpec) -> dg.AssetChecksDefinition:
    prom_key, grafana_key = env.resource_key("prometheus"), env.resource_key("grafana")

    @dg.asset_check(
        asset=env.asset_key(phase),
        name=spec.name,
        description=spec.description,
        blocking=True,
        required_resource_keys={prom_key, grafana_key},
    )
    @traced_check(spec.name)
    def _check(context, state: PhaseState) -> dg.AssetCheckResult:
        return evaluate(spec, getattr(context.resources, prom_key), getattr(context.resources, grafana_key),
                        phase, state)

    return _check


def all_checks() -> list[dg.AssetChecksDefinition]:
    from .drills import drill_checks  # the drills' and the report's blocking checks

    return [check for env in ENVIRONMENTS for check in build_checks(env)] + drill_checks()
