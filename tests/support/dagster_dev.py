"""Start a real `dagster dev` (webserver + daemon + code server) for a test or a benchmark, and stop it.

`dagster dev` started from a non-interactive parent ignores SIGINT, and it spawns a code server and run
workers: it runs in its own session (start_new_session=True) so one signal to its process group reaches
them all, and every process carries a marker in its environment so the caller can prove none is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from crdb_common import httpc
from evolution_pipeline.phases import REPO_ROOT
from tests.support.net import free_port

MARKER_VAR = "CRDB_EVOLUTION_DAGSTER_DEV_MARKER"

LOCATIONS_QUERY = """{ workspaceOrError { __typename
  ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message }
      ... on RepositoryLocation { name repositories { name } } } } }
  ... on PythonError { message } } }"""

LAUNCH_MUTATION = """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId status } }
  ... on PythonError { message } ... on RunConfigValidationInvalid { errors { message } }
  ... on PipelineNotFoundError { message } ... on InvalidSubsetError { message } } }"""

RUN_QUERY = """query Run($runId: ID!) { runOrError(runId: $runId) { __typename
  ... on Run { runId status startTime endTime tags { key value }
    stepStats { stepKey status startTime endTime } }
  ... on RunNotFoundError { message } ... on PythonError { message } } }"""

EVENTS_QUERY = """query Events($runId: ID!) { runOrError(runId: $runId) { __typename
  ... on Run { eventConnection(limit: 1000) { events { __typename
    ... on MessageEvent { message level stepKey timestamp eventType }
    ... on MaterializationEvent { assetKey { path } }
    ... on ErrorEvent { error { message } } } } } } }"""

TERMINATE_MUTATION = """mutation Terminate($runId: String!) { terminateRun(runId: $runId) {
  __typename ... on TerminateRunSuccess { run { runId status } }
  ... on TerminateRunFailure { message } ... on PythonError { message } } }"""

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def write_workspace(path: Path, module: str, location: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": module,
                            "working_directory": str(REPO_ROOT),
                            "location_name": location,
                        }
                    }
                ]
            }
        )
    )
    return path


@dataclass
class DagsterDev:
    """A running `dagster dev`; use start_dagster_dev() to get one."""

    process: subprocess.Popen
    port: int
    home: Path
    marker: str
    log_path: Path
    _log: object = field(repr=False, default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        r = httpc.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout
        )
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_until_loaded(self, location: str, timeout: float = 180) -> dict:
        """Wait for /server_info, then for the code location to be LOADED; returns its entry."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpc.get(f"{self.url}/server_info", timeout=5).status_code == 200:
                    data = self.graphql(LOCATIONS_QUERY, timeout=30)["workspaceOrError"]
                    entries = {e["name"]: e for e in data.get("locationEntries", [])}
                    entry = entries.get(location)
                    last = str(data)
                    if entry and entry["loadStatus"] == "LOADED":
                        loaded = entry["locationOrLoadError"]
                        if loaded["__typename"] != "RepositoryLocation":
                            raise AssertionError(f"code location {location!r} failed to load: {loaded}")
                        return entry
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(1)
        raise AssertionError(f"dagster dev not ready after {timeout}s ({last}):\n{self.log_tail()}")

    def launch(self, location: str, repository: str, job: str, run_config: dict | None = None,
               selection: dict | None = None) -> str:
        """Launch a run as the UI does; `selection` adds assetSelection / assetCheckSelection to the selector
        (the UI's "Execute" on chosen assets or checks)."""
        params = {
            "selector": {"repositoryLocationName": location, "repositoryName": repository, "jobName": job,
                         **(selection or {})},
            "runConfigData": run_config or {},
        }
        result = self.graphql(LAUNCH_MUTATION, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise AssertionError(f"launchRun failed: {result}")
        return result["run"]["runId"]

    def run(self, run_id: str) -> dict:
        run = self.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
        if run["__typename"] != "Run":
            raise AssertionError(f"runOrError: {run}")
        return run

    def wait_for_run(self, run_id: str, timeout: float = 360, poll: float = 1.0) -> dict:
        deadline = time.monotonic() + timeout
        run = self.run(run_id)
        while run["status"] not in FINISHED:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"run {run_id} still {run['status']} after {timeout}s:\n{self.log_tail()}"
                )
            time.sleep(poll)
            run = self.run(run_id)
        return run

    def terminate(self, run_id: str) -> dict:
        result = self.graphql(TERMINATE_MUTATION, {"runId": run_id})["terminateRun"]
        if result["__typename"] != "TerminateRunSuccess":
            raise AssertionError(f"terminateRun failed: {result}")
        return result["run"]

    def events(self, run_id: str) -> list[dict]:
        return self.graphql(EVENTS_QUERY, {"runId": run_id})["runOrError"]["eventConnection"]["events"]

    def errors(self, run_id: str) -> str:
        """The run's ERROR-level messages with their error text: what a failing test should show."""
        lines = []
        for e in self.events(run_id):
            if e.get("level") == "ERROR":
                detail = (e.get("error") or {}).get("message", "")
                lines.append(f"{e.get('stepKey') or '-'}: {e['message']} {detail}".strip())
        return "\n".join(lines)

    def processes(self) -> list[str]:
        """Live (non-zombie) processes of this dagster dev: same session/process group, or its marker."""
        pgid = self.process.pid
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                environ = Path(f"/proc/{entry}/environ").read_bytes()
                cmd = (
                    Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except (OSError, IndexError):
                continue
            state, pgrp, session = stat[0], int(stat[2]), int(stat[3])
            if state == "Z":
                continue
            if pgid in (pgrp, session) or f"{MARKER_VAR}={self.marker}".encode() in environ:
                found.append(f"{entry} (pgid {pgrp}): {cmd[:160]}")
        return found

    def stop(self, timeout: float = 30) -> list[str]:
        """SIGTERM the whole process group, SIGKILL whatever is left after `timeout`; returns what survived
        the SIGTERM (empty when the shutdown was clean)."""
        survivors: list[str] = []
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.processes():
            self.process.poll()  # reap our direct child so it does not linger as a zombie
            time.sleep(0.5)
        survivors = self.processes()
        for line in survivors:
            try:
                os.kill(int(line.split(" ")[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if self._log is not None:
            self._log.close()
        return survivors


# The run queue's pass every second instead of Dagster's 5 s (QueuedRunCoordinator dequeue_interval_seconds):
# a time knob, as the pool and tag limits come from the project's `concurrency:` block, which wins over a
# run_coordinator's own limits (dagster/_core/instance/config.py, ConcurrencyConfig.from_concurrency_settings).
FAST_QUEUE = """
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
"""


def start_dagster_dev(
    workdir: Path, module: str, location: str, env: dict[str, str] | None = None, log_level: str = "warning",
    instance_extra: str = "",
) -> DagsterDev:
    """Start `dagster dev` on 127.0.0.1 with DAGSTER_HOME=workdir/dagster_home holding the project's dagster.yaml
    (pools, run monitoring, tag concurrency) plus `instance_extra`, loading `module` as code location
    `location`."""
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    project = (REPO_ROOT / "dagster_home" / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(project + instance_extra)
    workspace = write_workspace(workdir / "workspace.yaml", module, location)
    port = free_port()
    marker = uuid.uuid4().hex
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    full_env = {
        **os.environ,
        **(env or {}),
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": pythonpath,
        MARKER_VAR: marker,
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    log_path = workdir / "dagster-dev.log"
    log = open(log_path, "w")  # noqa: SIM115 - lives as long as the process, closed by stop()
    dagster = Path(sys.executable).with_name("dagster")
    process = subprocess.Popen(
        [
            str(dagster),
            "dev",
            "-w",
            str(workspace),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--log-level",
            log_level,
        ],
        cwd=workdir,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return DagsterDev(process, port, home, marker, log_path, log)
