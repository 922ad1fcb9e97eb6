"""Demo controls: POST /control/{background|readers|writers}/{start|stop}, GET /control."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from ..controls import TARGETS
from ..errors import ApiError
from ._body import same_site

bp = Blueprint("control")
ACTIONS = ("start", "stop")


@bp.get("/control")
async def get_controls(request: Request):
    return json(request.app.ctx.controls.state())


@bp.post("/control/<target:str>/<action:str>")
async def post_control(request: Request, target: str, action: str):
    same_site(request)  # no body, so no content type to require: a page on another site must not drive load
    if target not in TARGETS:
        raise ApiError(404, f"unknown control '{target}'", {"field": "target", "accepted": list(TARGETS)})
    if action not in ACTIONS:
        raise ApiError(404, f"unknown action '{action}'", {"field": "action", "accepted": list(ACTIONS)})
    controls = request.app.ctx.controls
    state = controls.start(target) if action == "start" else await controls.stop(target)
    return json(state)
