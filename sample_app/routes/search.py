"""GET /search?q=prefix[&limit=n]: prefix search through the reader pool."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from .. import services

bp = Blueprint("search")


@bp.get("/search")
async def get_search(request: Request):
    settings = request.app.ctx.settings
    q, limit = services.parse_search(request.args.get("q"), request.args.get("limit"), settings.search_limit)
    return json(await services.search(request.app.ctx.db, q, limit))
