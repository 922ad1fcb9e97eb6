"""The real-cluster bench: real `cockroach` nodes started by the product's local backend, the real sample app
under its own background load, and a real Prometheus scraping both through the local backend's file_sd.

Everything is wired through environment variables, the way `make dev` (scripts/dev.sh) wires it, so the
pipeline's resources come from evolution_pipeline/configuration.py unchanged. Nothing here simulates
anything: the bench only starts processes, picks free ports and folders, and collects logs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crdb_common import httpc
from evolution_pipeline.environments import LIVE
from evolution_pipeline.phases import LAST_PHASE
from evolution_pipeline.resources.local import LocalClusterControl, LocalClusterResource
from tests.app.appproc import AppProcess
from tests.local.conftest import free_port_base
from tests.support.prometheus import RunningPrometheus, copy_rules, local_prometheus_config, start_prometheus

# The label the local backend's targets carry by default (resources/local LIVE_DEFAULTS) and the one the
# committed scrape config gives the app: the checks select it for both jobs.
CLUSTER_LABEL = "local"
# The app's own background load, requests per second (writers and readers mixed, sample_app/workload.py).
BACKGROUND_RPS = 20
# Generous bounds for a 2-core CI runner; the product's defaults are 900 s for both.
SETTINGS = {
    "SCALE_TIMEOUT_SECONDS": "300",
    "SCALE_POLL_SECONDS": "1",
    "REPLICATION_TIMEOUT_SECONDS": "900",
    "REPLICATION_POLL_SECONDS": "2",
    "CHECK_SETTLE_SECONDS": "120",
}


@dataclass
class RealBench:
    workdir: Path
    control: LocalClusterControl
    environ: dict[str, str]
    app: AppProcess | None = None
    prometheus: RunningPrometheus | None = None
    started: list[str] = field(default_factory=list)

    @property
    def admin_url(self) -> str:
        return self.environ["CRDB_ADMIN_URL"]

    def diagnostics(self, lines: int = 30) -> str:
        """The tail of every log the bench knows about, for a failure message."""
        logs = sorted(self.control.logs_dir.glob("*.log")) if self.control.logs_dir.exists() else []
        logs += [p for p in (self.app.log_path if self.app else None,
                             self.workdir / "prometheus" / "prometheus.log") if p and p.exists()]
        parts = []
        for log in logs:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    def close(self) -> None:
        """Stop what the bench started, nodes last (the app and Prometheus would only log their loss)."""
        if self.app is not None:
            self.app.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        self.control.stop_nodes(timeout=30)


def bench_environment(workdir: Path, cockroach_bin: str) -> dict[str, str]:
    """The variables make dev would set, pointed at `workdir` and free loopback ports."""
    taken: set[int] = set()
    bases = {}
    for kind in ("SQL", "LISTEN", "HTTP"):
        # One port of each kind per node of the evolution file (EVOLUTION_PLAN: six for three-zones).
        bases[kind] = free_port_base(count=LAST_PHASE.nodes, exclude=taken)
        taken |= set(range(bases[kind], bases[kind] + LAST_PHASE.nodes))
    environ = {
        "EVOLUTION_CLUSTER_BACKEND": "local",
        "COCKROACH_BIN": cockroach_bin,
        "LOCAL_CRDB_DATA_DIR": str(workdir / "local"),
        "LOCAL_CRDB_PROMETHEUS_DIR": str(workdir / "prometheus"),
        "LOCAL_CRDB_INSECURE": "false",
        "REHEARSAL_LOCAL_CRDB_DATA_DIR": str(workdir / "rehearsal"),  # never started, kept out of the repo
        "CRDB_CLUSTER_LABEL": CLUSTER_LABEL,
        "DAGSTER_HOME": str(workdir / "dagster_home"),
        "APP_WRITER_PASSWORD": secrets.token_urlsafe(18),
        "APP_READER_PASSWORD": secrets.token_urlsafe(18),
        **{f"LOCAL_CRDB_{kind}_PORT_BASE": str(base) for kind, base in bases.items()},
        **SETTINGS,
    }
    return environ


def start_bench(workdir: Path, cockroach_bin: str, monkeypatch: pytest.MonkeyPatch) -> RealBench:
    """Environment first (the resources read it), then Prometheus's CA and targets, the app, Prometheus."""
    environ = bench_environment(workdir, cockroach_bin)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    # Grafana is optional in the product; the bench has none, so no annotation is attempted. The live
    # node-loss drill is off by default (evolution_pipeline/drills): the suite runs the default evolve job.
    for name in ("GRAFANA_URL", "GRAFANA_API_URL", "GRAFANA_API_TOKEN", "EVOLUTION_NODE_LOSS_DRILL"):
        monkeypatch.delenv(name, raising=False)
    Path(environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    control = LocalClusterControl(LocalClusterResource.from_environment(LIVE).config())
    # root over its client certificate on node 1, exactly what `local admin-urls` prints for make dev.
    environ["CRDB_ADMIN_URL"] = control.sql_url(1, "root", "defaultdb")
    monkeypatch.setenv("CRDB_ADMIN_URL", environ["CRDB_ADMIN_URL"])
    monkeypatch.setenv("REHEARSAL_CRDB_ADMIN_URL", environ["CRDB_ADMIN_URL"])  # resolved only by rehearsals
    bench = RealBench(workdir, control, environ)
    try:
        bench.app = _start_app(control, environ, workdir)
        environ["SAMPLE_APP_URL"] = bench.app.base_url
        monkeypatch.setenv("SAMPLE_APP_URL", bench.app.base_url)
        bench.prometheus = _start_prometheus(control, bench.app.port)
        environ["PROMETHEUS_URL"] = bench.prometheus.url
        monkeypatch.setenv("PROMETHEUS_URL", bench.prometheus.url)
    except BaseException:
        bench.close()
        raise
    return bench


def _start_app(control: LocalClusterControl, environ: dict, workdir: Path) -> AppProcess:
    """The real app on the local cluster, as make dev starts it: writer on node 1, reader on node 2 then 1.
    It starts before any node exists (not ready until phase 0 creates its database) and its background load
    runs from the start, so every phase is judged under load."""
    env = {
        "APP_DB_WRITER_URL": control.writer_url(environ["APP_WRITER_PASSWORD"]),
        "APP_DB_READER_URL": control.reader_url(environ["APP_READER_PASSWORD"]),
        "APP_HASH_SALT": secrets.token_hex(16),
        "APP_BACKGROUND_RPS": str(BACKGROUND_RPS),
        "APP_LOG_LEVEL": "INFO",
    }
    app = AppProcess(env, workdir / "sample-app.log")
    httpc.post(f"{app.base_url}/control/background/start", timeout=10).raise_for_status()
    return app


def _start_prometheus(control: LocalClusterControl, app_port: int) -> RunningPrometheus:
    """The committed local scrape config (grafana/local/prometheus.yml) at 1 s intervals, its app target moved
    to the app's port as scripts/dev.sh does. The CA and targets file exist before Prometheus loads the config
    (control.prepare_prometheus explains why)."""
    runtime = control.prepare_prometheus().parent.parent
    copy_rules(runtime)
    config = local_prometheus_config("1s")
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            static["targets"] = [t.replace("127.0.0.1:8000", f"127.0.0.1:{app_port}") for t in static["targets"]]
    return start_prometheus(runtime, config)


def make_workdir() -> tuple[Path, bool]:
    """REAL_WORKDIR (kept afterwards, e.g. for CI to upload the logs) or a fresh temporary folder (removed)."""
    chosen = os.environ.get("REAL_WORKDIR")
    if chosen:
        path = Path(chosen).resolve() / time.strftime("run-%Y%m%dT%H%M%S")
        path.mkdir(parents=True, exist_ok=True)
        return path, True
    return Path(tempfile.mkdtemp(prefix="crdb-real-")), False


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
