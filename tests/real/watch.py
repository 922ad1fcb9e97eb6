"""A watcher beside the evolve run: when the app first became ready, and each phase's placement read the
moment its asset materialized.

The run is one `evolve` execution, so the suite cannot pause between phases. It does not need to: after a
phase materializes, its blocking checks run (at least the app checks' window) and the next phase runs its
preflight and backup before anything changes the zone configs again, so the placement read here is the
phase's own. The instance is a fresh temporary one: any materialization in it belongs to this run.
"""

from __future__ import annotations

import threading
import time

import dagster as dg
import httpx

from crdb_common import httpc
from evolution_pipeline.phases import PHASES

from .observe import Snapshot, read_snapshot


class Watcher(threading.Thread):
    def __init__(self, instance: dg.DagsterInstance, admin_url: str, app_url: str, interval: float = 0.5):
        super().__init__(name="real-watcher", daemon=True)
        self.instance, self.admin_url, self.app_url, self.interval = instance, admin_url, app_url, interval
        self.app_ready_at: float | None = None
        self.snapshots: dict[str, Snapshot] = {}
        self.errors: list[str] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)

    def run(self) -> None:
        pending = list(PHASES)
        while not self._halt.is_set() and (pending or self.app_ready_at is None):
            if self.app_ready_at is None and self._app_ready():
                self.app_ready_at = time.time()
            if pending and self._materialized(pending[0]):
                self.take(pending.pop(0))
            self._halt.wait(self.interval)

    def take(self, phase) -> None:
        try:
            snap = read_snapshot(self.admin_url, phase, time.time())
            snap.app_readyz = httpc.get(f"{self.app_url}/readyz", timeout=10).json()
            self.snapshots[phase.name] = snap
        except Exception as exc:  # reported by the test, with the phase it belongs to
            self.errors.append(f"{phase.name}: reading the placement or /readyz failed: {exc!r}")

    def _materialized(self, phase) -> bool:
        try:
            return self.instance.get_latest_materialization_event(dg.AssetKey(phase.name)) is not None
        except Exception as exc:
            self.errors.append(f"reading the instance failed: {exc!r}")
            return False

    def _app_ready(self) -> bool:
        try:
            return httpc.get(f"{self.app_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
