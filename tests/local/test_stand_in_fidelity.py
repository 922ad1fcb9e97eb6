"""The stand-in `cockroach` refuses and withholds what a real node does before it is ready (rules and their
upstream sources: tests/doubles/fake_cockroach_node.py). Driven through its CLI, as the local backend does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import tomllib

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crdb_common import httpc
from evolution_pipeline.phases import REPO_ROOT
from tests.local.conftest import FAKE_COCKROACH, free_port_base, kill_all, node_pids_under

pytestmark = pytest.mark.slow

WAITING = "node is waiting for cluster initialization"


@pytest.fixture
def nodes(tmp_path, monkeypatch):
    """Start insecure stand-in nodes by hand; every process is killed by pid afterwards."""
    monkeypatch.setenv("FAKE_COCKROACH_CLUSTER_DIR", str(tmp_path / "cluster"))
    base = free_port_base(9)
    join = f"127.0.0.1:{base}"
    started = []

    def start(i: int, **env) -> str:
        argv = [str(FAKE_COCKROACH), "start", "--insecure", f"--store={tmp_path / f'node{i}'}",
                f"--listen-addr=127.0.0.1:{base + i}", f"--sql-addr=127.0.0.1:{base + 3 + i}",
                f"--http-addr=127.0.0.1:{base + 6 + i}", f"--join={join}"]
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        started.append(proc)
        url = f"http://127.0.0.1:{base + 6 + i}"
        wait_for(lambda: answers(url), f"node {i} listening")
        return url

    def init() -> None:
        subprocess.run([str(FAKE_COCKROACH), "init", "--insecure", f"--host={join}"], check=True, timeout=30,
                       capture_output=True)

    yield start, init, started
    kill_all([p.pid for p in started if p.poll() is None] + node_pids_under(tmp_path))


def answers(url: str) -> bool:
    try:
        httpc.get(url + "/health", timeout=1)
        return True
    except httpx.HTTPError:
        return False


def wait_for(ok, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = ok()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"not {what} within {timeout:g} s")


def ready(url: str) -> httpx.Response:
    return httpc.get(url + "/health?ready=1", timeout=3)


def unavailable(response: httpx.Response) -> str:
    """The gateway's Unavailable body (admin.go checkReadinessForHealthCheck via the gRPC gateway)."""
    assert response.status_code == 503, response.text
    body = json.loads(response.text)
    assert body["code"] == 14 and body["message"] == body["error"] and body["details"] == []
    return body["error"]


def livenodes(url: str) -> str:
    text = httpc.get(url + "/_status/vars", timeout=3).text
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "liveness_livenodes"]
    (sample,) = family.samples
    return f'{sample.labels["node_id"]}:{sample.value:g}'


def test_before_init_a_node_is_not_ready_and_serves_no_metrics(nodes):
    start, init, _ = nodes
    url = start(0)
    assert unavailable(ready(url)) == WAITING
    assert ready(url).text.startswith('{\n  "error": "node is waiting'), "indented like CockroachDB's gateway"
    plain = httpc.get(url + "/health", timeout=3)
    assert (plain.status_code, plain.text) == (200, "{\n\n}"), "/health answers before init"
    vars_ = httpc.get(url + "/_status/vars", timeout=3)
    assert (vars_.status_code, vars_.text) == (404, "404 page not found\n"), "not routed before init"
    init()
    wait_for(lambda: ready(url).status_code == 200, "ready after init")
    assert livenodes(url) == "1:1"


def test_ready_only_once_its_liveness_record_is_live(nodes):
    start, init, _ = nodes
    url = start(0, FAKE_COCKROACH_FIRST_HEARTBEAT_DELAY="3")
    init()
    # Initialized, with a node ID and metrics, but no live liveness record yet: not healthy, and
    # liveness_livenodes is 0 because this node is not itself live (liveness.go numLiveNodes).
    assert unavailable(ready(url)) == "node is not healthy"
    assert livenodes(url) == "1:0"
    wait_for(lambda: ready(url).status_code == 200, "ready once it heartbeats")
    assert livenodes(url) == "1:1"


def test_a_node_that_cannot_join_keeps_waiting_and_a_joined_one_counts(nodes):
    start, init, _ = nodes
    first = start(0)
    second = start(1)
    assert unavailable(ready(second)) == WAITING
    init()
    wait_for(lambda: ready(second).status_code == 200, "node 2 joined and live")
    wait_for(lambda: livenodes(first) == "1:2", "node 1 counts node 2")
    assert livenodes(second) == "2:2"


def test_a_stopped_node_stays_live_until_its_record_expires(nodes, tmp_path):
    start, init, started = nodes
    first = start(0)
    start(1)
    init()
    wait_for(lambda: livenodes(first) == "1:2", "two live nodes")
    started[1].send_signal(signal.SIGKILL)
    started[1].wait(timeout=10)
    status = subprocess.run([str(FAKE_COCKROACH), "node", "status", "--insecure", "--format=csv",
                             f"--host={first.replace('http://', '').rsplit(':', 1)[0]}:{_sql_port(first)}"],
                            check=True, capture_output=True, text=True, timeout=30).stdout
    assert status.splitlines()[2].endswith("true,true"), "live until the 6 s record expires"
    pin = tomllib.loads((REPO_ROOT / "versions.toml").read_text())["cockroach"]["version"]
    assert status.splitlines()[1].split(",")[3] == f"{pin}-standin", "the pinned version, tagged stand-in"
    wait_for(lambda: livenodes(first) == "1:1", "node 2's record expired", timeout=15)


def _sql_port(http_url: str) -> int:
    return int(http_url.rsplit(":", 1)[1]) - 3


def test_a_stopping_node_is_unready_while_it_drains(nodes):
    """SIGTERM starts the drain: during server.shutdown.initial_wait the node still answers, with 503
    "node is shutting down" (grpcServer.health in modeDraining; docs v26.2 node-shutdown.md)."""
    start, init, started = nodes
    url = start(0, FAKE_COCKROACH_SHUTDOWN_INITIAL_WAIT="3")
    init()
    wait_for(lambda: ready(url).status_code == 200, "ready")
    started[0].send_signal(signal.SIGTERM)
    assert wait_for(lambda: ready(url).status_code == 503, "unready after SIGTERM", timeout=5)
    assert unavailable(ready(url)) == "node is shutting down"
    assert started[0].wait(timeout=15) == 0
