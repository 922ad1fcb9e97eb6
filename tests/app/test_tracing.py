"""Traces: configured by the OTEL_* variables, off without an endpoint, never in a request's way.

Unit tests use the SDK's in-memory exporter; the round trip runs the real app against a real
OTLP/HTTP receiver on 127.0.0.1 (tests/support/otlp.py, decoded with opentelemetry-proto) and a real
PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from crdb_common import httpc, otel
from crdb_common.httpc import default_tls
from sample_app import tracing
from sample_app.metrics import AppMetrics
from tests.support.otlp import OtlpReceiver

from .appproc import AppProcess
from .conftest import app_env
from .metrics_text import value

SERVER, CLIENT, INTERNAL = 2, 3, 1  # opentelemetry.proto.trace.v1.Span.SpanKind
TRACEPARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT_SPAN = "00f067aa0ba902b7"


# --- configuration ------------------------------------------------------------------------------


def test_off_without_an_endpoint():
    assert otel.endpoint({}) is None
    assert otel.endpoint({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}) is None
    assert otel.endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t:4318", "OTEL_SDK_DISABLED": "true"}) is None
    assert otel.endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t:4318", "OTEL_TRACES_EXPORTER": "none"}) is None
    assert otel.provider_from_env("x", env={}) is None


def test_endpoint_follows_the_sdk_specification():
    assert otel.endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t:4318/"}) == "http://t:4318/v1/traces"
    signal = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://t:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://u/x"}
    assert otel.endpoint(signal) == "http://u/x"  # the per-signal URL is used as given


@pytest.mark.parametrize(
    "env, named",
    [
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "x"}, "SAMPLER_ARG"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env, named):
    with pytest.raises(otel.TracingConfigError, match=named):
        otel.validate({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", **env})


def test_sampler_from_env():
    ratio = otel.sampler_from_env({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"})
    assert "TraceIdRatioBased{0.1}" in ratio.get_description() and ratio.get_description().startswith("ParentBased")
    assert otel.sampler_from_env({}).get_description() == ParentBased(ALWAYS_ON).get_description()


def test_the_app_refuses_a_bad_tracing_setting_at_start(pg, tmp_path):
    env = app_env(pg, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    with pytest.raises(RuntimeError, match="exited with 2.*OTEL_EXPORTER_OTLP_PROTOCOL"):
        AppProcess(env, tmp_path / "app.log")


# --- spans, with the in-memory exporter ----------------------------------------------------------


def _memory_tracing(sampler=ALWAYS_ON) -> tuple[tracing.Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=tracing.LoadAwareSampler(sampler), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    urls = {"writer": "postgresql://w:p@db.example:26257/app", "reader": "postgresql://r:p@ro.example/app"}
    return tracing.Tracing(provider, urls), exporter


def test_statement_spans_only_inside_a_sampled_request():
    t, exporter = _memory_tracing()
    sql = "SELECT term, popularity FROM search_terms WHERE term >= %s"
    assert t.start_statement("reader", sql) is None  # no request span: the readiness loop makes no roots
    with t.tracer.start_as_current_span("GET /search", kind=trace.SpanKind.SERVER):
        t.end_statement(t.start_statement("reader", sql))
        t.end_statement(t.start_statement("writer", "INSERT INTO login_events (id) VALUES (%s)"), "40001", "retry")
    db = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    assert [s.name for s in db] == ["SELECT search_terms", "INSERT login_events"]
    read, write = (dict(s.attributes) for s in db)
    assert read["db.system.name"] == read["db.system"] == "postgresql"
    assert read["db.operation.name"] == "SELECT" and read["db.collection.name"] == "search_terms"
    assert read["db.client.connection.pool.name"] == "reader" and read["server.address"] == "ro.example"
    assert read["server.port"] == 5432 and write["server.port"] == 26257
    assert write["error.type"] == "40001" and db[1].status.status_code is trace.StatusCode.ERROR
    server = next(s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.SERVER)
    assert all(s.parent.span_id == server.context.span_id for s in db)


def test_load_engine_samples_a_spike_at_a_few_traces_per_second():
    assert tracing.load_ratio(5) == 1.0 and tracing.load_ratio(1000) == pytest.approx(0.005)
    t, exporter = _memory_tracing(ParentBased(ALWAYS_ON))
    for _ in range(4000):
        with t.load_request("spike", "search", 1000):
            pass
    roots = len(exporter.get_finished_spans())
    assert 5 <= roots <= 40, roots  # 0.5 % of 4000 = 20, by trace id
    exporter.clear()
    for _ in range(50):
        with t.load_request("background", "login", 5):
            pass
    assert len(exporter.get_finished_spans()) == 50


class _Request:
    """What Tracing.start_request reads from a Sanic request."""

    def __init__(self, headers=None):
        self.headers = headers or {}
        self.method, self.path, self.scheme, self.version, self.ip = "GET", "/search", "http", "1.1", "127.0.0.1"
        self.server_name, self.server_port = "127.0.0.1", 8000
        self.ctx = type("Ctx", (), {})()


def test_root_requests_are_sampled_once_at_the_configured_ratio():
    env = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    t, exporter = _memory_tracing(otel.sampler_from_env(env))
    t.root_ratio = otel.root_ratio(env)
    for _ in range(5000):
        request = _Request()
        t.start_request(request, "/search")
        t.end_request(request, 200)
    kept = len(exporter.get_finished_spans())
    assert 380 <= kept <= 620, kept  # 10 % of 5000; drawn twice it would be about 50
    exporter.clear()
    sampled_parent = {"traceparent": f"00-{TRACEPARENT_TRACE}-{TRACEPARENT_SPAN}-01"}
    for _ in range(20):  # a caller's sampled trace is always continued (parent-based)
        request = _Request(sampled_parent)
        t.start_request(request, "/search")
        t.end_request(request, 200)
    assert len(exporter.get_finished_spans()) == 20
    assert otel.root_ratio({}) == 1.0 and otel.root_ratio({"OTEL_TRACES_SAMPLER": "always_off"}) == 0.0


def test_requests_follow_the_configured_sampler():
    t, exporter = _memory_tracing(ParentBased(ALWAYS_OFF))
    with t.tracer.start_as_current_span("GET /search", kind=trace.SpanKind.SERVER):
        assert t.start_statement("reader", "SELECT 1 FROM search_terms") is None
    assert exporter.get_finished_spans() == ()


class _Stuck(SpanExporter):
    """An endpoint that never answers in time: export blocks until released."""

    def __init__(self):
        self.release = threading.Event()
        self.calls = 0

    def export(self, spans):
        self.calls += 1
        self.release.wait(10)
        return SpanExportResult.FAILURE

    def shutdown(self):
        self.release.set()


def test_a_stuck_endpoint_fills_a_bounded_queue_and_drops_are_counted():
    dropped = {}
    outcomes = otel.Outcomes(dropped=lambda reason, n: dropped.__setitem__(reason, dropped.get(reason, 0) + n))
    stuck = _Stuck()
    processor = otel.BoundedBatchProcessor(stuck, "http://stuck", limit=50, outcomes=outcomes)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    started = time.perf_counter()
    for _ in range(2000):
        with tracer.start_as_current_span("x"):
            pass
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, "ending spans must not wait for the exporter"
    assert dropped.get("queue_full", 0) >= 2000 - 2 * 50  # at most one queue and one batch in flight
    stuck.release.set()
    processor.shutdown()


class _Failing(SpanExporter):
    def __init__(self):
        self.ok = False

    def export(self, spans):
        logging.getLogger("opentelemetry.exporter.otlp.common.http").error("Failed to export spans batch code: 503")
        return SpanExportResult.SUCCESS if self.ok else SpanExportResult.FAILURE

    def shutdown(self):
        pass


def test_export_failures_are_logged_once_per_outage_and_counted(caplog):
    metrics = AppMetrics(dict)
    outcomes = otel.Outcomes(
        dropped=lambda reason, n: metrics.trace_spans_dropped.labels(reason).inc(n),
        failed=metrics.trace_export_failures.inc,
    )
    inner = _Failing()
    counting = otel.CountingExporter(inner, "http://down", outcomes, taken=lambda n: None)
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            counting.export([object(), object()])
        inner.ok = True
        counting.export([object()])
    counting.shutdown()
    lines = [r.getMessage() for r in caplog.records if r.name == "crdb_common.otel"]
    assert len([m for m in lines if "failed" in m]) == 1 and "Failed to export spans batch code: 503" in lines[0]
    assert any("works again" in m for m in lines)
    assert not any(r.name.startswith("opentelemetry.exporter") for r in caplog.records)  # held back
    text = metrics.render().decode()
    assert value(text, "app_trace_export_failures_total") == 5
    assert value(text, "app_trace_spans_dropped_total", reason="export_failed") == 10


def test_log_lines_inside_a_sampled_span_carry_its_trace_id():
    t, _ = _memory_tracing()
    record = logging.LogRecord("sample_app", logging.ERROR, __file__, 1, "boom", None, None)
    tracing.TraceIdFilter().filter(record)
    assert record.trace == ""
    with t.tracer.start_as_current_span("GET /login") as span:
        tracing.TraceIdFilter().filter(record)
    assert record.trace.startswith(f" trace_id={span.get_span_context().trace_id:032x}")


# --- the real app, a real receiver ---------------------------------------------------------------


@pytest.fixture()
def receiver():
    r = OtlpReceiver()
    yield r
    r.close()


def _traced_app(pg, tmp_path, endpoint: str, **extra: str) -> AppProcess:
    env = app_env(
        pg,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME="sample-app-test",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=test",
        OTEL_BSP_SCHEDULE_DELAY="100",  # milliseconds: export promptly for the test
        **extra,
    )
    proc = AppProcess(env, tmp_path / "app.log")
    proc.wait_ready()
    return proc


def test_login_and_search_round_trip_over_otlp_http(pg, tmp_path, receiver):
    proc = _traced_app(pg, tmp_path, receiver.endpoint)
    try:
        with httpx.Client(verify=default_tls(), base_url=proc.base_url, timeout=10) as client:
            assert client.post("/login", json={"user_id": "traced"}).status_code == 200
            parent = {"traceparent": f"00-{TRACEPARENT_TRACE}-{TRACEPARENT_SPAN}-01"}
            assert client.get("/search", params={"q": "amb"}, headers=parent).status_code == 200
            assert client.get("/healthz").status_code == 200  # not traced
        spans = receiver.wait_for(
            lambda s: {"POST /login", "GET /search"} <= {x.name for x in s if x.kind == SERVER}
            and {"INSERT login_events", "SELECT search_terms"} <= {x.name for x in s if x.kind == CLIENT}
        )
    finally:
        proc.stop()
    assert set(receiver.content_types) == {"application/x-protobuf"}
    login = next(s for s in spans if s.name == "POST /login")
    search = next(s for s in spans if s.name == "GET /search")
    assert login.resource["service.name"] == "sample-app-test"
    assert login.resource["deployment.environment.name"] == "test"
    assert login.attributes["http.request.method"] == "POST" and login.attributes["http.route"] == "/login"
    assert login.attributes["http.response.status_code"] == 200 and login.attributes["url.path"] == "/login"
    assert login.attributes["server.address"] == "127.0.0.1" and login.attributes["server.port"] == proc.port
    assert search.trace_id == TRACEPARENT_TRACE and search.parent_span_id == TRACEPARENT_SPAN  # traceparent honoured
    for server, statement, pool in ((login, "INSERT login_events", "writer"), (search, "SELECT search_terms", "reader")):
        db = [s for s in spans if s.name == statement and s.trace_id == server.trace_id]
        assert db and all(s.parent_span_id == server.span_id for s in db), "a DB span is a child of its request"
        attributes = db[0].attributes
        assert attributes["db.system.name"] == "postgresql" and attributes["db.client.connection.pool.name"] == pool
        assert attributes["server.address"] == "127.0.0.1" and server.start_ns <= db[0].start_ns <= db[0].end_ns
    assert not any(s.attributes.get("http.route") == "/healthz" for s in spans)
    assert not any(s.kind == CLIENT and not s.parent_span_id for s in spans), "no DB span is a root"


def test_an_endpoint_that_is_down_never_slows_a_request(pg, tmp_path):
    down = OtlpReceiver(status=503, delay=0.5)  # answers slowly, and with a retryable error
    proc = _traced_app(pg, tmp_path, down.endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="2", OTEL_BSP_MAX_QUEUE_SIZE="64")
    try:
        with httpx.Client(verify=default_tls(), base_url=proc.base_url, timeout=10) as client:
            latencies = []
            for i in range(150):
                started = time.perf_counter()
                assert client.post("/login", json={"user_id": f"d{i}"}).status_code == 200
                latencies.append(time.perf_counter() - started)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                text = client.get("/metrics").text
                if (value(text, "app_trace_export_failures_total") or 0) >= 1:
                    break
                time.sleep(0.3)
        latencies.sort()
        assert latencies[int(len(latencies) * 0.99)] < 0.25, latencies[-5:]
        assert value(text, "app_trace_export_failures_total") >= 1
        dropped = (value(text, "app_trace_spans_dropped_total", reason="queue_full") or 0) + (
            value(text, "app_trace_spans_dropped_total", reason="export_failed") or 0
        )
        assert dropped > 0
        log = proc.log()
        assert log.count("trace export to") == 1, log  # once per outage
        # The exporter's per-batch error lines are held back: its reason appears only inside our one line.
        assert log.count("Failed to export") <= 1
    finally:
        proc.stop()
        down.close()


def test_nothing_is_exported_and_no_exporter_exists_without_an_endpoint(pg, monkeypatch):
    from sample_app.app import create_app
    from sample_app.settings import Settings

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "sample-app-off")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    before = {t.name for t in threading.enumerate()}
    app = create_app(Settings.from_env(app_env(pg)), name="tracing_off")
    assert app.ctx.tracing is None and app.ctx.db.tracing is None
    middleware = [m.func.__name__ for m in app.request_middleware] + [m.func.__name__ for m in app.response_middleware]
    assert "_trace_start" not in middleware and "_trace_end" not in middleware
    assert not {t.name for t in threading.enumerate()} - before, "no exporter thread was started"


def test_a_follower_read_and_its_failure_show_in_the_trace(pg, tmp_path, receiver):
    """Through the CockroachDB start-up stand-in: the reader's span carries the AS OF SYSTEM TIME text it
    sent, and PostgreSQL's refusal (42601) marks the DB span and the 500 marks the request span."""
    from .crdb_wire import CrdbStartupProxy

    proxy = CrdbStartupProxy(pg.port)
    proc = _traced_app(
        pg,
        tmp_path,
        receiver.endpoint,
        APP_DB_WRITER_URL=proxy.url("app_rw_01", pg.passwords["app_rw_01"]),
        APP_DB_READER_URL=proxy.url("app_ro_01", pg.passwords["app_ro_01"]),
    )
    try:
        assert httpc.get(proc.base_url + "/search", params={"q": "amb"}, timeout=10).status_code == 500
        spans = receiver.wait_for(lambda s: any(x.name == "GET /search" for x in s))
    finally:
        proc.stop()
        proxy.close()
    request = next(s for s in spans if s.name == "GET /search")
    assert request.attributes["http.response.status_code"] == 500 and request.status_code == 2
    (db,) = [s for s in spans if s.kind == CLIENT and s.parent_span_id == request.span_id]
    assert "AS OF SYSTEM TIME follower_read_timestamp()" in db.attributes["db.query.text"]
    assert db.attributes["error.type"] == "42601" and db.status_code == 2
