"""POST /login {"user_id": ...}: one login event through the writer pool."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from .. import services
from ._body import json_body

bp = Blueprint("login")


@bp.post("/login")
async def post_login(request: Request):
    user_id = services.parse_login(json_body(request))
    ctx = request.app.ctx
    event = await services.login(
        ctx.db,
        ctx.settings.hash_salt,
        user_id,
        request.remote_addr or request.ip or "",
        request.headers.get("user-agent", ""),
        ctx.settings.login_max_retries,
    )
    return json(event)
