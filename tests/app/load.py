"""Continuous /login and /search load on a running sample app, counting every request that is not a 200."""

from __future__ import annotations

import threading
import time

import httpx

from crdb_common.httpc import default_tls

# Requests per second per thread. Four threads make ~100 requests/s, a request in flight every ~10 ms of a
# credential switch (which takes the app ~1 s). Unpaced (5 ms between answers) they made ~170/s on an idle
# machine, and the load, the app and its database were a visible share of the suite's CPU for no more
# coverage: a switch is not shorter than 10 ms.
PER_THREAD_RPS = 25


class Load:
    """Continuous /login and /search from a few threads; every answer that is not a 200 is a failure."""

    def __init__(self, base_url: str, threads: int = 2):
        self.base_url, self.stop_flag = base_url, threading.Event()
        self.count, self.failures = 0, []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(kind,), daemon=True)
                        for kind in ("login", "search") for _ in range(threads)]

    def _run(self, kind: str) -> None:
        period = 1.0 / PER_THREAD_RPS
        with httpx.Client(verify=default_tls(), base_url=self.base_url, timeout=10.0) as c:
            n, due = 0, time.monotonic()
            while not self.stop_flag.is_set():
                n += 1
                due = max(due + period, time.monotonic())  # behind after a slow answer: no burst to catch up
                try:
                    r = (c.post("/login", json={"user_id": f"rotation-{n}"}) if kind == "login"
                         else c.get("/search", params={"q": "amb"}))
                    ok, what = r.status_code == 200, f"{kind} {r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, what = False, f"{kind} {exc!r}"
                with self._lock:
                    self.count += 1
                    if not ok:
                        self.failures.append(what)
                # Paced, not slept: the time an answer took counts towards the period.
                self.stop_flag.wait(max(0.0, due - time.monotonic()))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=15)
