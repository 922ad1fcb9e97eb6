"""POST /login {"user_id": ...}: one login event through the writer pool."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from .. import services
from ._body import json_body

bp = Blueprint("login")


def client_ip(request: Request) -> str:
    """The client's address: the proxy-reported one when Sanic is told to trust proxies.

    request.remote_addr parses Forwarded/X-Forwarded-For on every call, and only means something
    when FORWARDED_SECRET, REAL_IP_HEADER or PROXIES_COUNT is configured; otherwise it is always
    empty, so skip it and take the peer address (the hot path of every login).
    """
    config = request.app.config
    if config.FORWARDED_SECRET or config.REAL_IP_HEADER or config.PROXIES_COUNT:
        return request.remote_addr or request.ip or ""
    return request.ip or ""


@bp.post("/login")
async def post_login(request: Request):
    user_id = services.parse_login(json_body(request))
    ctx = request.app.ctx
    event = await services.login(
        ctx.db,
        ctx.settings.hash_salt,
        user_id,
        client_ip(request),
        request.headers.get("user-agent", ""),
        ctx.settings.login_max_retries,
    )
    return json(event)
