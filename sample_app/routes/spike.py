"""POST /spike starts one spike (guardrails, 409 while one runs), GET reports it, DELETE stops it."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from ._body import json_body, same_site

bp = Blueprint("spike")


@bp.post("/spike")
async def start_spike(request: Request):
    report = request.app.ctx.spike.start(json_body(request, required=False))
    return json(report, status=202)


@bp.get("/spike")
async def get_spike(request: Request):
    return json(request.app.ctx.spike.state())


@bp.delete("/spike")
async def stop_spike(request: Request):
    same_site(request)
    stopped = await request.app.ctx.spike.stop()
    return json({"stopped": stopped is not None, "spike": request.app.ctx.spike.state()})
