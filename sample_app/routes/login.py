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
    when FORWARDED_SECRET, REAL_IP_HEADER or PROXIES_COUNT is configured (app.ctx.trusts_proxy, set
    once by create_app); otherwise it is always empty, so skip it and take the peer address.
    """
    if request.app.ctx.trusts_proxy:
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
