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
from sanic.exceptions import SanicException
from sanic.handlers import ErrorHandler
from sanic.response import HTTPResponse, json

from .db import DatabaseRefused, DatabaseUnavailable

log = logging.getLogger("sample_app.errors")


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
    if isinstance(exc, SanicException):
        return {"error": str(exc.message or type(exc).__name__).lower(), "detail": None}
    return {"error": "internal error", "detail": "the server logged the cause"}


class JsonErrorHandler(ErrorHandler):
    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        status = status_for(exception)
        if status >= 500 and not isinstance(exception, (DatabaseUnavailable, ApiError)):
            log.error("unhandled error on %s %s", request.method, request.path, exc_info=exception)
            trace.get_current_span().record_exception(exception)  # a no-op unless a sampled span is current
        headers = {"Retry-After": "1"} if status == 503 else None
        return json(body_for(exception), status=status, headers=headers)
