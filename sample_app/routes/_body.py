"""Shared request-body parsing: invalid JSON is a 400 naming the body, not Sanic's HTML page."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.exceptions import BadRequest

from ..errors import bad_field


def json_body(request: Request, required: bool = True) -> Any:
    if not request.body:
        if required:
            raise bad_field("body", "empty: send a JSON object with Content-Type: application/json")
        return None
    try:
        return request.json
    except BadRequest:  # malformed JSON
        raise bad_field("body", "not valid JSON") from None
