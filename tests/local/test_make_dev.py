"""`make dev` without a CockroachDB binary (the situation on this machine and in CI): the Dagster UI and the
sample app (on an embedded PostgreSQL) come up, the one missing-binary message is printed, and one SIGINT
(what Ctrl-C sends to the terminal's foreground process group) stops everything it started."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from evolution_pipeline.phases import REPO_ROOT
from evolution_pipeline.resources.local import MISSING_BINARY_MESSAGE
from tests.local.conftest import free_port_base, live_processes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def processes_with(marker: str, path: Path) -> list[str]:
    """Processes carrying the test's marker in their environment, or naming its folder on their command line."""
    return [
        f"{pid}: {cmd[:160]}"
        for pid, cmd, environ in live_processes()
        if marker.encode() in environ or str(path) in cmd
    ]


def kill_leftovers(marker: str, path: Path) -> None:
    for line in processes_with(marker, path):
        try:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


def path_without_cockroach() -> str:
    return os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not (Path(p) / "cockroach").exists()
    )


def test_make_dev_without_binary_starts_ui_and_app_and_one_sigint_stops_all(tmp_path):
    ports: dict[str, int] = {}
    for name in ("dagster", "app", "prometheus"):
        ports[name] = free_port_base(1, exclude=set(ports.values()))
    marker = f"DEV_TEST_MARKER={uuid.uuid4().hex}"
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
    data_dir = tmp_path / "data"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"COCKROACH_BIN", "DAGSTER_HOME", "MAKEFLAGS", "MFLAGS"}
    }
    env.update(
        {
            "PATH": path_without_cockroach(),
            "DEV_DAGSTER_PORT": str(ports["dagster"]),
            "DEV_APP_PORT": str(ports["app"]),
            "DEV_PROMETHEUS_PORT": str(ports["prometheus"]),
            "DEV_DAGSTER_HOME": str(dagster_home),
            "LOCAL_CRDB_DATA_DIR": str(data_dir),
            "LOCAL_CRDB_SQL_PORT_BASE": str(free_port_base()),
            "LOCAL_CRDB_LISTEN_PORT_BASE": str(free_port_base()),
            "LOCAL_CRDB_HTTP_PORT_BASE": str(free_port_base()),
            marker.split("=")[0]: marker.split("=")[1],
        }
    )
    # Its own process group, like a terminal's foreground job: the SIGINT below is exactly a Ctrl-C.
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "dev"],
        cwd=REPO_ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 420
        while (
            time.monotonic() < deadline
            and proc.poll() is None
            and not any("[dev] ready" in line for line in lines)
        ):
            time.sleep(0.5)
        output = "".join(lines)
        assert "[dev] ready" in output, f"make dev did not become ready:\n{output}"
        assert MISSING_BINARY_MESSAGE in output, "the one clear message about the missing binary"
        assert output.count("https://www.cockroachlabs.com/docs/releases/") == 1

        app = httpx.get(f"http://127.0.0.1:{ports['app']}/healthz", timeout=10)
        assert app.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{ports['app']}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["ready"] is True, (
            ready.text
        )  # on the embedded PostgreSQL
        info = httpx.get(f"http://127.0.0.1:{ports['dagster']}/server_info", timeout=10)
        assert info.status_code == 200 and "dagster_version" in info.json()
        workspace = httpx.post(
            f"http://127.0.0.1:{ports['dagster']}/graphql", json={"query": WORKSPACE_QUERY}, timeout=30
        ).json()["data"]["workspaceOrError"]
        entries = workspace["locationEntries"]
        assert [e["locationOrLoadError"]["__typename"] for e in entries] == ["RepositoryLocation"], entries
        prometheus = httpx.get(f"http://127.0.0.1:{ports['prometheus']}/-/ready", timeout=10)
        assert prometheus.status_code == 200

        secrets = data_dir / "secrets.env"
        assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
        assert {line.split("=")[0] for line in secrets.read_text().splitlines()} >= {
            "APP_WRITER_PASSWORD",
            "APP_READER_PASSWORD",
        }
        assert (data_dir / "prometheus" / "prometheus.yml").is_file()
        assert f"127.0.0.1:{ports['app']}" in (data_dir / "prometheus" / "prometheus.yml").read_text()

        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=90)
        reader.join(timeout=10)
        assert "[dev] stopped" in "".join(lines)

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and processes_with(marker, tmp_path):
            time.sleep(0.5)
        assert processes_with(marker, tmp_path) == [], "everything make dev started is gone"
        for port in ports.values():
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        kill_leftovers(marker, tmp_path)
