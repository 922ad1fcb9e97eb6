"""Rolling per-second statistics, streamed to the dashboard over the WebSocket.

Observations accumulate in the current one-second bucket; a ticker closes the bucket every
second into a small JSON-able point (req/s by route, latency percentiles, errors, DB latency by
pool, spike state, readiness, events such as spike start/stop) kept in a bounded history.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 2)


class _Bucket:
    def __init__(self) -> None:
        self.count_by_route: dict[str, int] = defaultdict(int)
        self.latencies: list[float] = []
        self.errors = 0
        self.client_errors = 0
        self.db: dict[str, list[float]] = {"writer": [], "reader": []}
        self.events: list[dict[str, Any]] = []


class Timeline:
    def __init__(self, history_seconds: int = 300):
        self.points: deque[dict[str, Any]] = deque(maxlen=history_seconds)
        self._bucket = _Bucket()
        self._seq = 0
        self._changed: asyncio.Event | None = None
        # Filled in by the app: callables giving the spike state and the last readiness result.
        self.spike_state: Callable[[], dict[str, Any]] = lambda: {"active": False}
        self.readiness: Callable[[], bool | None] = lambda: None
        self.reader_path: Callable[[], str] = lambda: "reader"
        self.db_users: Callable[[], dict[str, str]] = dict  # pool -> SQL user (credential rotation)
        self.follower_reads: Callable[[], dict[str, Any]] = lambda: {"on": False, "short": "", "reason": ""}

    # --- observations (called on every request: keep them cheap)
    def request(self, route: str, status: int, seconds: float | None) -> None:
        bucket = self._bucket
        bucket.count_by_route[route] += 1
        # Only API traffic feeds the latency percentiles: scrapes and the page would dilute them.
        if seconds is not None and route in ("/login", "/search"):
            bucket.latencies.append(seconds)
        if status >= 500:
            bucket.errors += 1
        elif status >= 400:
            bucket.client_errors += 1

    def db(self, pool: str, seconds: float) -> None:
        self._bucket.db.setdefault(pool, []).append(seconds)

    def event(self, kind: str, **detail: Any) -> None:
        self._bucket.events.append({"kind": kind, "t": round(time.time(), 3), **detail})

    # --- the ticker
    def roll(self, now: float | None = None) -> dict[str, Any]:
        bucket, self._bucket = self._bucket, _Bucket()
        lat = sorted(bucket.latencies)
        point = {
            "t": round(now if now is not None else time.time(), 3),
            "rps": dict(bucket.count_by_route),
            "latency_ms": {
                "p50": _ms(percentile(lat, 0.5)),
                "p95": _ms(percentile(lat, 0.95)),
                "p99": _ms(percentile(lat, 0.99)),
            },
            "errors": bucket.errors,
            "client_errors": bucket.client_errors,
            "db_ms": {
                pool: {
                    "p50": _ms(percentile(sorted(v), 0.5)),
                    "p99": _ms(percentile(sorted(v), 0.99)),
                    "count": len(v),
                }
                for pool, v in bucket.db.items()
            },
            "spike": self.spike_state(),
            "ready": self.readiness(),
            "reader_path": self.reader_path(),
            "db_users": self.db_users(),
            "follower_reads": self.follower_reads(),
            "events": bucket.events,
        }
        self.points.append(point)
        self._seq += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()
        return point

    async def wait_next(self, seq: int, timeout: float = 5.0) -> int:
        """Wait until a point newer than `seq` exists; return the current sequence number."""
        if self._seq > seq:
            return self._seq
        if self._changed is None:
            self._changed = asyncio.Event()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass
        return self._seq

    @property
    def seq(self) -> int:
        return self._seq

    def since(self, seq: int) -> list[dict[str, Any]]:
        """Points added after sequence number `seq` (at most the whole history)."""
        fresh = self._seq - seq
        if fresh <= 0:
            return []
        return list(self.points)[-fresh:]
