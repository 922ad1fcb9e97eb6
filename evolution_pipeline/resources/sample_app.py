"""The sample app's HTTP API: readiness for the preflight, load control for rehearsals.

The pipeline never stops or restarts the app; it only asks whether it is ready and, in a rehearsal, may
start the app's own background load so the checks have traffic to judge.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import httpx

from crdb_common import httpc


class SampleAppError(RuntimeError):
    pass


@dataclass(frozen=True)
class Readiness:
    ready: bool
    status_code: int | None
    detail: dict | str


class SampleAppResource(dg.ConfigurableResource):
    url: str = "http://127.0.0.1:8000"
    timeout_seconds: float = 5.0
    # After phase 0 creates its database: how long to wait for the app to connect before moving on.
    ready_timeout_seconds: float = 120.0
    poll_seconds: float = 2.0

    def readiness(self) -> Readiness:
        try:
            r = httpc.get(f"{self.url.rstrip('/')}/readyz", timeout=self.timeout_seconds)
        except httpx.HTTPError as exc:
            return Readiness(False, None, f"sample app at {self.url} unreachable: {exc}")
        try:
            body = r.json()
        except ValueError:
            body = r.text[:500]
        return Readiness(r.status_code == 200, r.status_code, body)

    def set_background_load(self, running: bool) -> dict:
        action = "start" if running else "stop"
        try:
            r = httpc.post(f"{self.url.rstrip('/')}/control/background/{action}", timeout=self.timeout_seconds)
        except httpx.HTTPError as exc:
            raise SampleAppError(f"sample app at {self.url} unreachable: {exc}") from exc
        if r.status_code >= 400:
            raise SampleAppError(f"POST /control/background/{action} answered {r.status_code}: {r.text[:300]}")
        return r.json()
