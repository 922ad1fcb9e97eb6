"""A real OTLP/HTTP trace receiver on 127.0.0.1 for the tracing tests: POST /v1/traces with an
ExportTraceServiceRequest in protobuf (OTLP specification, "OTLP/HTTP"), decoded with opentelemetry-proto.

It can also play an endpoint that is down (status 503, which the exporter retries) or slow (a delay
before answering), to show that neither reaches the app's requests.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.doubles.http_reply import send_body

PROTOBUF = "application/x-protobuf"


@dataclass
class Span:
    """One received span, flattened: ids as hex, attributes as plain Python values."""

    name: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind: 2 SERVER, 3 CLIENT, 1 INTERNAL
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict
    resource: dict
    status_code: int
    start_ns: int
    end_ns: int
    events: list[str] = field(default_factory=list)


def _value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _attributes(kvs) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


class OtlpReceiver:
    def __init__(self, status: int = 200, delay: float = 0.0, port: int = 0, decode: bool = True):
        self.status = status
        self.delay = delay
        self.decode = decode  # False: count requests only (the benchmark's receiver, kept light)
        self.spans: list[Span] = []
        self.requests = 0
        self.content_types: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver._receive(self.path, self.headers.get("Content-Type", ""), body)
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    if receiver.status != 200:
                        send_body(self, receiver.status, b"", "text/plain")
                    else:
                        send_body(self, 200, ExportTraceServiceResponse().SerializeToString(), PROTOBUF)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the exporter gave up waiting (its timeout): what a slow endpoint causes

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _receive(self, path: str, content_type: str, body: bytes) -> None:
        with self._lock:
            self.requests += 1
            self.content_types.append(content_type)
        if path != "/v1/traces" or not self.decode:
            return
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for rs in request.resource_spans:
            resource = _attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append(
                        Span(
                            name=s.name,
                            kind=s.kind,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            attributes=_attributes(s.attributes),
                            resource=resource,
                            status_code=s.status.code,
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            events=[e.name for e in s.events],
                        )
                    )
        with self._lock:
            self.spans.extend(spans)

    def wait_for(self, predicate, timeout: float = 15.0) -> list[Span]:
        """Spans received so far, once `predicate(spans)` holds (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            time.sleep(0.1)
        raise AssertionError(f"the receiver did not get the expected spans within {timeout}s: {self.spans}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":  # a receiver process for bench/app_throughput.py: python -m tests.support.otlp PORT
    import sys

    receiver = OtlpReceiver(port=int(sys.argv[1]), decode=False)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
