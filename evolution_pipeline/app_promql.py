"""The sample app's traffic and 5xx PromQL over a window pinned with `@ <end>` (Prometheus >= 2.25, on by
default since 2.33): the one home of the queries the phase checks, the drills, the rehearsal report and the
rotation check all judge the app by, so they can never disagree on what "kept serving" means.

A window is given by its own start and end (a phase's, a drill's, a rotation's), never by "the minutes before
now": a check re-executed tomorrow judges the same window. Low module: it imports only the Prometheus resource.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .resources.prometheus import PrometheusResource


def at(end: float) -> str:
    return f"@ {end:.3f}"


@dataclass(frozen=True)
class Window:
    """Minutes pinned to their own start and end (`@ <end>` in PromQL)."""

    start: float
    end: float

    @property
    def seconds(self) -> int:
        # floor: a window never reaches back past `start` (increase() only counts samples inside it).
        return math.floor(self.end - self.start)

    @classmethod
    def at_least(cls, start: float, end: float, minimum: float) -> Window:
        """From start to end, extended forward to start + minimum when shorter (increase() needs two samples
        inside its range): the judge waits for that end rather than reaching back before start."""
        return cls(start, max(end, start + minimum))


def requests(prom: PrometheusResource, start: float, end: float, errors_only: bool = False) -> str:
    """The app's requests (or only its 5xx) on its judged routes from start to end, pinned at end; a window
    shorter than min_window_seconds reaches back to that length."""
    extra = f'route=~"{prom.app_routes}"' + (',status=~"5.."' if errors_only else "")
    seconds = max(int(prom.min_window_seconds), Window(start, end).seconds)
    return f"sum(increase({prom.app('app_requests_total', extra)}[{seconds}s] {at(end)}))"


def error_ratio(prom: PrometheusResource, start: float, end: float) -> str:
    # `or vector(0)`: no 5xx series at all means no errors, not "no data".
    return f"({requests(prom, start, end, errors_only=True)} or vector(0)) / {requests(prom, start, end)}"


def within_error_budget(prom: PrometheusResource, budget: float | None = None
                        ) -> tuple[Callable[[float], bool], str]:
    """The predicate on error_ratio's value and its expectation text: at most `budget` (a phase's own, from
    its evolution file), else APP_ERROR_BUDGET."""
    budget = prom.app_error_budget if budget is None else budget
    return (lambda v: v <= budget), f"<= {budget:g} (error budget)"
