"""Start a REAL Prometheus (Debian's `prometheus` package, installed by scripts/setup.sh) for a test."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from tests.support.net import free_port


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if not path:
        raise RuntimeError("prometheus is not installed: run `make setup` (apt-get install prometheus)")
    return path


@dataclass
class RunningPrometheus:
    url: str
    process: subprocess.Popen
    config_path: Path

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def wait_for(self, expr: str, timeout: float = 30.0, predicate=None) -> list[dict]:
        """Poll until `expr` returns series (and `predicate(result)` holds, when given)."""
        deadline = time.monotonic() + timeout
        result: list[dict] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result and (predicate is None or predicate(result)):
                return result
            time.sleep(0.5)
        raise AssertionError(f"Prometheus never returned the expected data for {expr!r}; last: {result}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def scrape_config(jobs: dict[str, list[str]], labels: dict[str, str], metrics_path: dict[str, str]) -> dict:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": metrics_path.get(job, "/metrics"),
                "static_configs": [{"targets": targets, "labels": labels}],
            }
            for job, targets in jobs.items()
        ],
    }


def start_prometheus(workdir: Path, config: dict | None = None, *, jobs: dict[str, list[str]] | None = None,
                     labels: dict[str, str] | None = None, metrics_path: dict[str, str] | None = None,
                     extra_files: dict[str, str] | None = None) -> RunningPrometheus:
    """Start Prometheus on a free loopback port with `config` (or a 1 s scrape config built from `jobs`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in (extra_files or {}).items():
        (workdir / name).write_text(text)
    if config is None:
        config = scrape_config(jobs or {}, labels or {}, metrics_path or {})
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(workdir / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [prometheus_binary(), f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return RunningPrometheus(url, proc, config_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("prometheus did not become ready in 30 s")
