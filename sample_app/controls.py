"""The demo controls: background load, readers and writers, each an open-loop LoadRun.

They run until stopped (the pipeline starts background load before an evolution and stops it
after), at rates from the settings. Starting one that runs, or stopping one that is stopped, is a
no-op that reports the current state: the calls are idempotent so the pipeline can retry them.
"""

from __future__ import annotations

from typing import Any

from .spike import LoadRun, Record, Trace, Workload

TARGETS = ("background", "readers", "writers")
MIXES = {
    "background": {"login": 0.2, "search": 0.8},
    "readers": {"login": 0.0, "search": 1.0},
    "writers": {"login": 1.0, "search": 0.0},
}


class Controls:
    def __init__(self, settings, workload: Workload, record: Record, timeline, trace: Trace | None = None):
        self.trace = trace
        self.rates = {
            "background": settings.background_rps,
            "readers": settings.readers_rps,
            "writers": settings.writers_rps,
        }
        self.max_inflight = settings.spike_max_inflight
        self.workload = workload
        self.record = record
        self.timeline = timeline
        self.runs: dict[str, LoadRun | None] = {t: None for t in TARGETS}

    def start(self, target: str) -> dict[str, Any]:
        run = self.runs[target]
        if not (run and run.active):
            run = LoadRun(
                target,
                self.rates[target],
                None,
                MIXES[target],
                self.workload,
                self.record,
                self.max_inflight,
                self.trace,
            )
            self.runs[target] = run
            run.start()
            self.timeline.event(f"{target}_start")
        return self.state()

    async def stop(self, target: str) -> dict[str, Any]:
        run = self.runs[target]
        if run and run.active:
            await run.stop()
            self.timeline.event(f"{target}_stop")
        return self.state()

    async def stop_all(self) -> None:
        for target in TARGETS:
            await self.stop(target)

    def state(self) -> dict[str, Any]:
        out = {}
        for target in TARGETS:
            run = self.runs[target]
            out[target] = {
                "running": bool(run and run.active),
                "rps": self.rates[target],
                "sent": run.sent if run else 0,
                "errors": run.errors if run else 0,
            }
        return out

    def brief_state(self) -> dict[str, bool]:
        return {t: bool(r and r.active) for t, r in self.runs.items()}
