"""Continuous /login and /search load on a running sample app, counting every request that is not a 200."""

from __future__ import annotations

import threading
import time

import httpx


class Load:
    """Continuous /login and /search from a few threads; every answer that is not a 200 is a failure."""

    def __init__(self, base_url: str, threads: int = 2):
        self.base_url, self.stop_flag = base_url, threading.Event()
        self.count, self.failures = 0, []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(kind,), daemon=True)
                        for kind in ("login", "search") for _ in range(threads)]

    def _run(self, kind: str) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10.0) as c:
            n = 0
            while not self.stop_flag.is_set():
                n += 1
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
                time.sleep(0.005)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=15)
