"""The open-loop load engine with guardrails: spikes and the always-on demo loads.

Open loop: request i is due at start + i/rps and is sent then, whether or not earlier requests
returned (a closed loop would slow down exactly when the database does, hiding the problem).
Latency counts from the intended send time, so a late start is charged to the request (no
coordinated omission). In-flight requests are capped (APP_SPIKE_MAX_INFLIGHT): past the cap a
due request is not sent but counted as dropped, with status 503, so overload stays visible and
memory stays bounded.

Each request calls the same service function an HTTP request would (see app.workload) and is
recorded through Telemetry under the same route labels ("/login", "/search"). It skips only the
HTTP parsing layer, which is what lets one core sustain 500 req/s of spike on top of real traffic.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from .errors import ApiError, bad_field
from .timeline import percentile

log = logging.getLogger("sample_app.spike")
KINDS = ("login", "search")
# Below this a "spike" sends nothing for its whole length (rps=5e-324: one request every 1e323 s) while it
# holds the one-at-a-time slot. The demo loads' own floor (APP_BACKGROUND_RPS) is the same.
MIN_RPS = 0.1
DEFAULT_SPIKE = {"seconds": 30, "rps": 200, "mix": {"login": 0.2, "search": 0.8}}

# kind -> (route, method, status); never raises.
Workload = Callable[[str], Awaitable[tuple[str, str, int]]]
Record = Callable[[str, str, int, float | None], None]
# (load name, kind, rps) -> context manager around one request's span (sample_app.tracing).
Trace = Callable[[str, str, float], AbstractContextManager[Any]]


def parse_spike(body: Any, max_seconds: int, max_rps: int) -> dict[str, Any]:
    """Validate and normalize a POST /spike body against the guardrails."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise bad_field("body", 'expected a JSON object such as {"seconds": 30, "rps": 200}')
    unknown = sorted(set(body) - {"seconds", "rps", "mix"})
    if unknown:
        raise bad_field(unknown[0], "unknown field (accepted: seconds, rps, mix)")
    seconds = _finite(body.get("seconds", DEFAULT_SPIKE["seconds"]))
    rps = _finite(body.get("rps", DEFAULT_SPIKE["rps"]))
    if seconds is None or not 0 < seconds <= max_seconds:
        raise bad_field("seconds", f"a number above 0 and at most {max_seconds} (APP_SPIKE_MAX_SECONDS)")
    if rps is None or not MIN_RPS <= rps <= max_rps:
        raise bad_field("rps", f"a number from {MIN_RPS} to {max_rps} (APP_SPIKE_MAX_RPS)")
    mix = parse_mix(body.get("mix", DEFAULT_SPIKE["mix"]))
    return {"seconds": seconds, "rps": rps, "mix": mix}


def parse_mix(mix: Any) -> dict[str, float]:
    if not isinstance(mix, dict) or not mix:
        raise bad_field("mix", 'an object of weights such as {"login": 0.2, "search": 0.8}')
    weights = {}
    for key, weight in mix.items():
        if key not in KINDS:
            raise bad_field(f"mix.{key}", f"unknown kind (accepted: {', '.join(KINDS)})")
        weights[key] = _finite(weight)
        if weights[key] is None or weights[key] < 0:
            raise bad_field(f"mix.{key}", "a finite weight >= 0")
    total = sum(weights.values())
    if not math.isfinite(total):  # each weight finite, their sum not (1e308 + 1e308): nothing to draw from
        raise bad_field("mix", "the weights' sum overflows: use small numbers such as 0.2 and 0.8")
    if total <= 0:
        raise bad_field("mix", "at least one weight must be above 0")
    return {k: round(weights.get(k, 0.0) / total, 6) for k in KINDS}


def _finite(value: Any) -> float | None:
    """The value as a finite float, or None: not a number, a bool, NaN, infinite, or an int too large for a
    float (a 400-digit integer makes math.isfinite raise OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


class LoadRun:
    """One open-loop generator: `rps` requests per second for `seconds` (None = until stopped)."""

    def __init__(
        self,
        name: str,
        rps: float,
        seconds: float | None,
        mix: dict[str, float],
        workload: Workload,
        record: Record,
        max_inflight: int,
        trace: Trace | None = None,
    ):
        self.id = uuid.uuid4().hex[:12]
        self.trace = trace  # Tracing.load_request when tracing is on
        self.name = name
        self.rps = rps
        self.seconds = seconds
        self.mix = mix
        self.workload = workload
        self.record = record
        self.max_inflight = max_inflight
        self.state = "pending"
        self.started_at: float | None = None  # wall clock, for the API
        self.ended_at: float | None = None
        self.sent = self.completed = self.errors = self.dropped = self.inflight = 0
        self.error: str | None = None  # why the schedule itself failed (state "failed")
        self.lags: deque[float] = deque(maxlen=20000)  # scheduling lag per send, seconds
        self._done_times: deque[float] = deque()  # monotonic completion times in the last second
        self._t0 = 0.0  # perf_counter at start
        self._task: asyncio.Task | None = None
        self._children: set[asyncio.Task] = set()
        self._rng = random.Random(self.id)
        self._kinds = [k for k in KINDS if mix.get(k, 0) > 0]
        self._weights = [mix[k] for k in self._kinds]

    # --- lifecycle
    def start(self) -> None:
        self.state = "running"
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self._task = asyncio.get_running_loop().create_task(self._schedule(), name=f"load-{self.name}")

    async def stop(self) -> None:
        if self._task and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.state == "running":
            self._finish("stopped")

    @property
    def active(self) -> bool:
        return self.state == "running"

    async def wait(self) -> None:
        if self._task:
            await asyncio.shield(self._task)

    # --- the schedule
    async def _schedule(self) -> None:
        # perf_counter, not loop.time(): uvloop's clock has millisecond resolution, too coarse
        # to measure a scheduling lag whose budget is a few milliseconds.
        clock = time.perf_counter
        start = clock()
        interval = 1.0 / self.rps
        i = 0
        try:
            while self.seconds is None or i * interval < self.seconds:
                due = start + i * interval
                delay = due - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.lags.append(max(0.0, clock() - due))
                self._send(due)
                i += 1
            # Let the last requests finish so "completed" is final, bounded by a grace period.
            if self._children:
                await asyncio.wait(set(self._children), timeout=5.0)
            self._finish("finished")
        except asyncio.CancelledError:
            self._finish("stopped")
            raise
        except Exception as exc:  # a failed schedule must end the run, never leave it "running"
            # Nobody awaits this task: without this the run would stay active for ever and every later spike
            # would get 409. The reason goes to GET /spike and the log.
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            log.error("load %s (%s) failed: %s", self.name, self.id, self.error, exc_info=exc)
            self._finish("failed")

    def _send(self, due: float) -> None:
        self.sent += 1
        kind = self._rng.choices(self._kinds, self._weights)[0] if len(self._kinds) > 1 else self._kinds[0]
        if self.inflight >= self.max_inflight:
            self.dropped += 1
            self.errors += 1
            route, method = ("/login", "POST") if kind == "login" else ("/search", "GET")
            self.record(route, method, 503, None)  # never sent: no latency to report
            return
        self.inflight += 1
        task = asyncio.get_running_loop().create_task(self._one(kind, due))
        self._children.add(task)
        task.add_done_callback(self._children.discard)

    async def _one(self, kind: str, due: float) -> None:
        try:
            if self.trace is None:
                route, method, status = await self.workload(kind)
            else:
                with self.trace(self.name, kind, self.rps) as span:
                    route, method, status = await self.workload(kind)
                    span.set_attribute("http.response.status_code", status)
        finally:
            self.inflight -= 1
        now = time.perf_counter()
        self.completed += 1
        self._done_times.append(now)
        if status >= 500:
            self.errors += 1
        self.record(route, method, status, now - due)

    def _finish(self, state: str) -> None:
        self.state = state
        self.ended_at = time.time()

    # --- reporting
    def achieved_rps(self) -> float:
        """Completions per second over the last second (what the gauge and the timeline show).

        In the run's first second the window is the time since the start, so a fresh spike is not
        reported at a fraction of its rate.
        """
        if not self.active:
            return 0.0
        now = time.perf_counter()
        while self._done_times and self._done_times[0] < now - 1.0:
            self._done_times.popleft()
        window = min(1.0, now - self._t0)
        return round(len(self._done_times) / window, 1) if window > 0.05 else 0.0

    def report(self) -> dict[str, Any]:
        end = self.ended_at or time.time()
        elapsed = max(0.0, end - self.started_at) if self.started_at else 0.0
        lags = sorted(self.lags)
        # From the first intended send to the last completion: a slow tail lowers the average.
        span = elapsed
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "active": self.active,
            "rps": self.rps,
            "seconds": self.seconds,
            "mix": self.mix,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "elapsed": round(elapsed, 3),
            "error": self.error,
            "sent": self.sent,
            "completed": self.completed,
            "errors": self.errors,
            "dropped": self.dropped,
            "inflight": self.inflight,
            "achieved_rps": self.achieved_rps(),
            "average_rps": round(self.completed / span, 2) if span > 0 else 0.0,
            "lag_ms": {
                "p50": _ms(percentile(lags, 0.5)),
                "p99": _ms(percentile(lags, 0.99)),
                "max": _ms(lags[-1] if lags else None),
            },
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 3)


class SpikeController:
    """One spike at a time, within the guardrails; feeds the spike gauges and timeline markers."""

    def __init__(self, settings, workload: Workload, record: Record, metrics, timeline, trace: Trace | None = None):
        self.settings = settings
        self.trace = trace
        self.workload = workload
        self.record = record
        self.metrics = metrics
        self.timeline = timeline
        self.current: LoadRun | None = None

    def start(self, body: Any) -> dict[str, Any]:
        spec = parse_spike(body, self.settings.spike_max_seconds, self.settings.spike_max_rps)
        if self.current and self.current.active:
            raise ApiError(
                409, "a spike is already running", {"id": self.current.id, "hint": "DELETE /spike stops it"}
            )
        run = LoadRun(
            "spike",
            spec["rps"],
            spec["seconds"],
            spec["mix"],
            self.workload,
            self.record,
            self.settings.spike_max_inflight,
            self.trace,
        )
        self.current = run
        run.start()
        run._task.add_done_callback(lambda _t, r=run: self._ended(r))
        self.metrics.spike_target.set(spec["rps"])
        self.timeline.event("spike_start", id=run.id, rps=spec["rps"], seconds=spec["seconds"])
        return run.report()

    async def stop(self) -> dict[str, Any] | None:
        run = self.current
        if not run or not run.active:
            return None
        await run.stop()
        return run.report()

    def _ended(self, run: LoadRun) -> None:
        self.metrics.spike_target.set(0)
        self.metrics.spike_achieved.set(0)
        self.metrics.spike_workers.set(0)
        self.timeline.event("spike_stop", id=run.id, state=run.state, completed=run.completed)

    def tick(self) -> None:
        """Called every second: refresh the gauges from the running spike."""
        run = self.current
        if run and run.active:
            self.metrics.spike_achieved.set(run.achieved_rps())
            self.metrics.spike_workers.set(run.inflight)

    def state(self) -> dict[str, Any]:
        if not self.current:
            return {"active": False, "state": "idle"}
        return self.current.report()

    def brief_state(self) -> dict[str, Any]:
        """Small version for the timeline (sent every second)."""
        run = self.current
        if not run:
            return {"active": False}
        return {
            "active": run.active,
            "id": run.id,
            "target_rps": run.rps if run.active else 0,
            "achieved_rps": run.achieved_rps(),
            "inflight": run.inflight,
            "state": run.state,
        }
