"""JSON errors everywhere: {"error": ..., "detail": ...}, never a stack trace.

ApiError is what handlers and services raise for bad input; status_for() maps any exception to
the HTTP status the client sees, and is shared with the load engine so spike traffic is counted
with the same statuses as real requests.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from sanic import Request
from sanic.exceptions import RequestCancelled, SanicException, ServiceUnavailable
from sanic.handlers import ErrorHandler
from sanic.response import HTTPResponse, json

from .db import DatabaseRefused, DatabaseUnavailable

log = logging.getLogger("sample_app.errors")

# The client closed the connection before the answer: nginx's 499 "client closed request". Not a server
# error: counting it as a 5xx would let any client that gives up (a load generator timing out) spend the
# error budget the pipeline's sample_app_error_budget check judges a phase by.
CLIENT_CLOSED = 499


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail


def bad_field(field: str, detail: str) -> ApiError:
    """A 400 that names the offending field, both in the message and as a key."""
    return ApiError(400, f"invalid field '{field}'", {"field": field, "reason": detail})


def status_for(exc: BaseException) -> int:
    if isinstance(exc, RequestCancelled):
        return CLIENT_CLOSED
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, DatabaseUnavailable):
        return 503
    if isinstance(exc, DatabaseRefused):
        return 500
    if isinstance(exc, SanicException):
        return int(getattr(exc, "status_code", 500) or 500)
    return 500


def body_for(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ApiError):
        return {"error": exc.error, "detail": exc.detail}
    if isinstance(exc, DatabaseUnavailable):
        return {
            "error": "database unavailable",
            "detail": {"pool": exc.pool, "sqlstate": exc.sqlstate, "message": exc.message},
        }
    if isinstance(exc, DatabaseRefused):
        # The statement was refused (privileges, schema): an operator problem, not the client's.
        return {
            "error": "database refused the statement",
            "detail": {"pool": exc.pool, "sqlstate": exc.sqlstate, "message": exc.message},
        }
    if isinstance(exc, RequestCancelled):
        return {"error": "client closed request", "detail": None}
    if isinstance(exc, SanicException):
        return {"error": str(exc.message or type(exc).__name__).lower(), "detail": None}
    return {"error": "internal error", "detail": "the server logged the cause"}


def body_incomplete(request: Request) -> bool:
    """The request's body has not fully arrived (Sanic still expects bytes of it)."""
    stream = request.stream
    return bool(stream is not None and getattr(stream, "request_body", None)
                and getattr(stream, "request_bytes_left", 0))


class JsonErrorHandler(ErrorHandler):
    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, ServiceUnavailable) and body_incomplete(request):
            # Sanic's response timeout fired while the client was still sending its body: the client was too
            # slow (sample_app/server.py limits a request's total time), not the server. 408, never a 5xx.
            exception = ApiError(408, "request timeout", "the request body did not arrive within "
                                 f"APP_REQUEST_TIMEOUT_SECONDS={request.app.ctx.settings.request_timeout_seconds:g}")
        status = status_for(exception)
        if status >= 500 and not isinstance(exception, (DatabaseUnavailable, ApiError)):
            log.error("unhandled error on %s %s", request.method, request.path, exc_info=exception)
            trace.get_current_span().record_exception(exception)  # a no-op unless a sampled span is current
        headers = {"Retry-After": "1"} if status == 503 else None
        return json(body_for(exception), status=status, headers=headers)
