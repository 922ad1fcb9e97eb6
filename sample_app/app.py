"""create_app(settings): the Sanic app factory.

Process model: one Sanic process per container, by design (python -m sample_app runs it with
single_process=True). prometheus-client keeps metrics in process memory, the spike's "one at a
time" rule and the demo controls are process state, and the timeline is computed from this
process's requests: with one process all of them are simply correct. Scale out with replicas
(each scraped separately), not with Sanic workers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from . import readiness, tracing
from .controls import Controls
from .credentials import CredentialFollower
from .db import Database
from .errors import JsonErrorHandler
from .metrics import AppMetrics
from .routes import control, health, login, search, spike, ui
from .settings import Settings
from .spike import SpikeController
from .telemetry import Telemetry
from .timeline import Timeline
from .workload import make_workload

log = logging.getLogger("sample_app")
READINESS_INTERVAL_SECONDS = 2.0
TRACE_SHUTDOWN_SECONDS = 3.0
_PARAM = re.compile(r"<([^:>]+)(?::[^>]*)?>")
_LABELS: dict[str, str] = {}  # route path -> label, one entry per registered route
# The method label: any other token a client sends counts as "other", so label values stay bounded.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def route_label(request: Request) -> str:
    """The URL path template ("/login", "/control/{target}/{action}"): bounded label values."""
    route = request.route
    if route is None:
        return "unmatched"
    label = _LABELS.get(route.path)
    if label is None:
        label = _LABELS[route.path] = "/" + _PARAM.sub(r"{\1}", route.path)
    return label


class TimedRequest(Request):
    """A request that knows when it arrived: the start of its latency (app_request_duration_seconds).

    Stamped in the constructor, i.e. once the request line and headers are parsed: the moment an
    on_request middleware would see, without the cost of a middleware call on every request.
    """

    __slots__ = ("started",)

    def __init__(self, *args, **kwargs):
        self.started = time.perf_counter()
        super().__init__(*args, **kwargs)


def create_app(settings: Settings, name: str = "sample_app") -> Sanic:
    app = Sanic(name, error_handler=JsonErrorHandler(), request_class=TimedRequest)
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.REQUEST_MAX_SIZE = 64 * 1024  # bodies are a few bytes: refuse big ones early
    app.config.ACCESS_LOG = False
    # Both count from a request's first byte (sample_app/server.py): the total time a request may take.
    app.config.REQUEST_TIMEOUT = app.config.RESPONSE_TIMEOUT = settings.request_timeout_seconds
    app.config.WEBSOCKET_PING_INTERVAL = 10

    timeline = Timeline(settings.timeline_seconds)
    # The pool collector reads db at scrape time only (registration never calls it): a closure over
    # the name is enough although db is built after the metrics it reports to.
    metrics = AppMetrics(lambda: db.stats(), lambda: db.users())
    telemetry = Telemetry(metrics, timeline)
    # None unless an OTLP endpoint is set (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT): then nothing traces.
    tracer = tracing.from_env(metrics, {"writer": settings.writer_url, "reader": settings.reader_url})
    load_trace = tracer.load_request if tracer else None
    db = Database(settings, telemetry, tracer)
    workload = make_workload(db, settings)
    spike_ctl = SpikeController(settings, workload, telemetry.request, metrics, timeline, load_trace)
    controls = Controls(settings, workload, telemetry.request, timeline, load_trace)

    app.ctx.settings = settings
    # Sanic's proxy settings (SANIC_FORWARDED_SECRET / _REAL_IP_HEADER / _PROXIES_COUNT, read from the
    # environment when the app is built): whether X-Forwarded-For may name the client (routes/login.py).
    config = app.config
    app.ctx.trusts_proxy = bool(config.FORWARDED_SECRET or config.REAL_IP_HEADER or config.PROXIES_COUNT)
    app.ctx.metrics = metrics
    app.ctx.telemetry = telemetry
    app.ctx.timeline = timeline
    app.ctx.db = db
    app.ctx.tracing = tracer
    app.ctx.spike = spike_ctl
    app.ctx.controls = controls
    app.ctx.last_ready = None
    timeline.spike_state = spike_ctl.brief_state
    timeline.readiness = lambda: app.ctx.last_ready
    timeline.reader_path = lambda: db.reader_path
    timeline.db_users = db.users
    timeline.follower_reads = lambda: _follower_brief(db)

    for bp in (login.bp, search.bp, spike.bp, health.bp, control.bp, ui.bp):
        app.blueprint(bp)

    @app.on_response
    async def _observe(request: TimedRequest, response: HTTPResponse) -> None:
        if response is None:
            return
        seconds = time.perf_counter() - request.started
        method = request.method if request.method in HTTP_METHODS else "other"
        telemetry.request(route_label(request), method, response.status, seconds)

    if tracer is not None:
        _trace_requests(app, tracer)

    @app.after_server_start
    async def _start_background(app: Sanic) -> None:
        await db.open()
        # Plain tasks we own and cancel ourselves (Sanic warns about every task it has to cancel).
        app.ctx.background_tasks = [
            asyncio.create_task(_tick(app)),
            asyncio.create_task(_watch_readiness(app)),
        ]
        if settings.writer_url_file or settings.reader_url_file:  # follow rotated credentials (mounted Secret)
            app.ctx.background_tasks.append(asyncio.create_task(CredentialFollower(db, settings, metrics).run()))

    @app.before_server_stop
    async def _stop_background(app: Sanic) -> None:
        await spike_ctl.stop()
        await controls.stop_all()
        tasks = getattr(app.ctx, "background_tasks", [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await db.close()
        if tracer is not None:
            # Flushes what is queued; bounded, so an unreachable endpoint cannot hold up the stop.
            try:
                await asyncio.wait_for(asyncio.to_thread(tracer.shutdown), TRACE_SHUTDOWN_SECONDS)
            except TimeoutError:
                log.warning("trace export did not finish within %ss at shutdown", TRACE_SHUTDOWN_SECONDS)

    return app


def _trace_requests(app: Sanic, tracer: tracing.Tracing) -> None:
    """A SERVER span per request, from the request middleware to the response one (registered only
    when tracing is on: with it off, requests run no tracing code at all)."""

    @app.on_request
    async def _trace_start(request: TimedRequest) -> None:
        tracer.start_request(request, route_label(request))

    @app.on_response
    async def _trace_end(request: TimedRequest, response: HTTPResponse) -> None:
        tracer.end_request(request, response.status if response is not None else 500)


def _follower_brief(db: Database) -> dict:
    state = db.follower_reads_status()
    return {"on": state.on, "short": state.short, "reason": state.reason}


async def _tick(app: Sanic) -> None:
    """Every wall-clock second: refresh the spike gauges, then close a timeline point."""
    next_tick = math.floor(time.time()) + 1
    while True:
        # Timers may fire a little early (uvloop rounds to milliseconds): sleep until the boundary
        # has really passed, so there is exactly one point per second.
        while (remaining := next_tick - time.time()) > 0:
            await asyncio.sleep(remaining + 0.001)
        app.ctx.spike.tick()
        app.ctx.timeline.roll(now=next_tick)
        next_tick = max(next_tick + 1, math.floor(time.time()))  # after a stall, skip, don't burst


async def _watch_readiness(app: Sanic) -> None:
    """Keep a recent readiness result for the timeline (/readyz itself always checks live)."""
    while True:
        try:
            await app.ctx.db.maintain()
            result = await readiness.check(app.ctx.db)
            app.ctx.last_ready = result["ready"]
        except Exception:  # a probe must never kill the loop
            log.exception("readiness probe failed")
            app.ctx.last_ready = False
        await asyncio.sleep(READINESS_INTERVAL_SECONDS)
