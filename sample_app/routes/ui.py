"""GET / (the dashboard page), /static/* (its script and style), WebSocket /ws/timeline."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path

from sanic import Blueprint, Request
from sanic.response import file

STATIC = Path(__file__).resolve().parent.parent / "static"
bp = Blueprint("ui")
bp.static("/static", str(STATIC), name="static")


@bp.get("/")
async def index(request: Request):
    return await file(STATIC / "index.html", mime_type="text/html; charset=utf-8")


@bp.websocket("/ws/timeline")
async def timeline_ws(request: Request, ws):
    """Send the recent history at once, then every new one-second point as it closes."""
    app = request.app
    timeline = app.ctx.timeline
    await ws.send(
        jsonlib.dumps(
            {"type": "hello", "history": list(timeline.points), "controls": app.ctx.controls.brief_state()}
        )
    )
    seq = timeline.seq
    while True:
        new_seq = await timeline.wait_next(seq)
        for point in timeline.since(seq):
            await ws.send(
                jsonlib.dumps({"type": "point", "point": point, "controls": app.ctx.controls.brief_state()})
            )
        seq = new_seq
