"""Shared request guards: JSON bodies (415 unless application/json, 400 naming the body when malformed) and
the same-site rule for every route that changes something.

Why both: a web page on any other site can make the presenter's browser send a CORS "simple request" (POST
with Content-Type text/plain, form-urlencoded or multipart/form-data) without asking first. Requiring
application/json takes that away from the JSON routes (anything else needs a preflight this app never
grants); refusing requests a browser marks as coming from another site (Fetch Metadata `Sec-Fetch-Site`,
else `Origin` against `Host`) covers the routes without a body too (POST /control/..., DELETE /spike) and a
POST /spike with an empty body. Clients that are not browsers (curl, the pipeline, load generators) send
neither header and are served as before.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from sanic import Request

from ..errors import ApiError, bad_field

JSON = "application/json"
# Fetch Metadata (https://www.w3.org/TR/fetch-metadata/): "none" is a navigation the user started (typed URL,
# bookmark), "same-origin" the page itself. "same-site" is refused too: another port or subdomain of the
# same site is another application.
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


def same_site(request: Request) -> None:
    """403 when a browser says the request comes from another site (Sec-Fetch-Site, else Origin vs Host)."""
    fetch_site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if fetch_site is not None:
        if fetch_site.strip().lower() in ALLOWED_FETCH_SITES:
            return
        raise _cross_site(f"Sec-Fetch-Site: {fetch_site}")
    if origin is None:
        return  # not a browser, or a same-origin GET-like request from one: nothing to refuse
    if origin.strip().lower() == "null" or urlsplit(origin.strip()).netloc.lower() != request.host.lower():
        raise _cross_site(f"Origin: {origin}")


def _cross_site(what: str) -> ApiError:
    return ApiError(403, "cross-site request refused",
                    {"reason": f"{what[:200]}: this route changes state and only serves the app's own page "
                               "or clients that are not browsers"})


def json_body(request: Request, required: bool = True) -> Any:
    same_site(request)
    if not request.body:
        if required:
            raise bad_field("body", "empty: send a JSON object with Content-Type: application/json")
        return None
    media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type != JSON:
        raise ApiError(415, "unsupported media type",
                       {"content_type": media_type[:100] or None, "accepted": JSON})
    try:
        # NaN and Infinity are not JSON (RFC 8259), though Python's parser takes them by default.
        return json.loads(request.body, parse_constant=_not_json)
    except (ValueError, RecursionError):  # malformed JSON, bad UTF-8, an integer of > 4300 digits, deep nesting
        raise bad_field("body", "not valid JSON") from None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
