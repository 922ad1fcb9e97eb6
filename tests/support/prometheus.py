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

from crdb_common import httpc
from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]
LOCAL_PROMETHEUS = REPO / "grafana" / "local" / "prometheus.yml"
RULE_FILES = sorted((REPO / "grafana" / "alerts").glob("*.rules.yml"))


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
        r = httpc.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
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


def start_prometheus(workdir: Path, config: dict) -> RunningPrometheus:
    """Start Prometheus on a free loopback port with `config` (written to workdir/prometheus.yml)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    with open(workdir / "prometheus.log", "wb") as log:  # the child keeps its own copy of the descriptor
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
            if httpc.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return RunningPrometheus(url, proc, config_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("prometheus did not become ready in 30 s")


def local_prometheus_config(interval: str = "1s") -> dict:
    """grafana/local/prometheus.yml with its scrape, timeout, evaluation and file_sd refresh intervals all set
    to `interval`, so a test sees scrapes and target changes within seconds. Nothing else differs."""
    config = yaml.safe_load(LOCAL_PROMETHEUS.read_text())
    config["global"].update(scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval)
    for job in config["scrape_configs"]:
        for sd in job.get("file_sd_configs", []):
            sd["refresh_interval"] = interval
    return config


def copy_rules(runtime: Path) -> None:
    """The alert rules (grafana/alerts/*.rules.yml) where the local config's `rule_files` reads them."""
    (runtime / "rules").mkdir(parents=True, exist_ok=True)
    for rules in RULE_FILES:
        shutil.copy(rules, runtime / "rules" / rules.name)
