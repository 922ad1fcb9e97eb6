"""GET /healthz (liveness: the process answers), GET /readyz (database checks), GET /metrics."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json, raw

from .. import readiness
from ..metrics import CONTENT_TYPE

bp = Blueprint("health")


@bp.get("/healthz")
async def healthz(request: Request):
    # Liveness never touches the database: a database outage must not restart the app.
    return json({"status": "ok"})


@bp.get("/readyz")
async def readyz(request: Request):
    result = await readiness.check(request.app.ctx.db)
    request.app.ctx.last_ready = result["ready"]
    if result["ready"]:
        return json(result)
    failed = {name: c.get("detail") for name, c in result["checks"].items() if c["ok"] is False}
    body = {"error": "not ready", "detail": failed, **result}
    return json(body, status=503)


@bp.get("/metrics")
async def metrics(request: Request):
    return raw(request.app.ctx.metrics.render(), content_type=CONTENT_TYPE)
