"""The HTTP protocol the app serves with: Sanic's, with a total time limit per request.

Sanic's REQUEST_TIMEOUT / RESPONSE_TIMEOUT count from the last byte received (HttpProtocol.data_received
resets the clock on every byte), so a client trickling one byte a second keeps a connection open for ever:
300 such clients kept 300 connections past the 60 s limit. Here a byte that arrives while a request is in
progress no longer resets the clock: both limits count from the request's first byte, i.e. a request has
APP_REQUEST_TIMEOUT_SECONDS in total to arrive and be answered. A client still sending when it runs out
gets 408 (headers: Sanic's own RequestTimeout; body: sample_app/errors.py turns Sanic's response timeout
into 408, since the client was the slow one), and the connection is closed. The bodies are at most
64 KiB (REQUEST_MAX_SIZE) and every handler is bounded by the pool timeout, so honest clients are far inside.
Idle keep-alive connections between requests and WebSockets keep Sanic's own rules (the timeline stream is long-lived).
"""

from __future__ import annotations

from time import monotonic as current_time  # Sanic's own request clock

from sanic.http import Stage
from sanic.server.protocols.websocket_protocol import WebSocketProtocol


class BoundedRequestProtocol(WebSocketProtocol):
    """WebSocketProtocol (the app has a WebSocket route) whose request clock starts at a request's first byte."""

    __slots__ = ("_request_started",)  # Sanic's protocols use __slots__

    def connection_made(self, transport) -> None:
        self._request_started = current_time()
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        http = getattr(self, "_http", None)
        if self.websocket is not None or http is None or _between_requests(http):
            super().data_received(data)  # a new request (or a WebSocket frame): the clock starts now
            self._request_started = self._time
            return
        started = self._time
        super().data_received(data)
        self._time = started  # mid-request: more bytes are no progress that earns more time

    def check_timeouts(self) -> None:
        # After an error answer (the 408 above) Sanic reads the rest of the body before closing, in the IDLE
        # stage whose keep-alive timeout (120 s) a trickle would keep resetting: cut it at the same limit.
        http = getattr(self, "_http", None)
        if (self._task and http is not None and http.stage is Stage.IDLE and _body_left(http)
                and current_time() - self._request_started > self.request_timeout):
            self._task.cancel()
            return
        before = self._callback_check_timeouts
        super().check_timeouts()
        if self._callback_check_timeouts is before and self.transport and not self.transport.is_closing():
            # Sanic fired a timeout and stopped checking; its error answer may be followed by that body reading.
            self._callback_check_timeouts = self.loop.call_later(max(0.1, self.request_timeout / 2),
                                                                 self.check_timeouts)


def _between_requests(http) -> bool:
    """Idle with no body left to read: the next byte starts a new request."""
    return http.stage is Stage.IDLE and not _body_left(http)


def _body_left(http) -> bool:
    # Unset (a slot) until Sanic's first init_for_request; an AttributeError in the first check_timeouts would
    # stop Sanic from ever scheduling the next one.
    return bool(getattr(http, "request_body", None))
