"""Fixtures for the local-cluster tests: the stand-in `cockroach` (tests/doubles/fake_cockroach.py, since no
CockroachDB binary can be obtained here), free loopback ports, and cleanup of every process a test starts."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from evolution_pipeline.resources.local import LocalClusterConfig, LocalClusterControl

FAKE_COCKROACH = Path(__file__).resolve().parents[1] / "doubles" / "fake_cockroach"


# Where the bases are drawn: below the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768
# on), where no client connection is ever given a local port. A node stopped and restarted by a test needs its
# ports again seconds later; an ephemeral port picked with bind(0) may meanwhile become some connection's
# local port (seen once in a parallel run: "SQL port ... already in use by another process"). Below 20000 too:
# the end-to-end backend tests draw from 20000-26000 and the local backend's defaults start at 26257.
PORT_BASE_RANGE = (10000, 20000)


def free_port_base(count: int = 3, exclude: set[int] | None = None) -> int:
    """A base port with `count` consecutive free loopback ports (none of them in `exclude`), drawn at random
    so that parallel workers rarely meet."""
    exclude = exclude or set()
    for _ in range(200):
        base = random.randrange(PORT_BASE_RANGE[0], PORT_BASE_RANGE[1] - count)
        ports = range(base, base + count)
        if exclude & set(ports):
            continue
        if all(_free(p) for p in ports):
            return base
    raise RuntimeError("no free port range found")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def live_processes() -> list[tuple[int, str, bytes]]:
    """(pid, command line, environment) of every live (non-zombie) process but this one, from /proc. The
    environment is empty where it may not be read."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        proc = Path("/proc", entry)
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            environ = b""
        if state != "Z":
            found.append((int(entry), cmd, environ))
    return found


def node_pids_under(path: Path) -> list[int]:
    """Live processes whose command line mentions `path` (the stand-in nodes started for one test)."""
    return [pid for pid, cmd, _ in live_processes() if str(path) in cmd]


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


@dataclass
class LocalClusterEnv:
    root: Path
    cluster_dir: Path  # the stand-in's shared membership state and argv log
    data_dir: Path
    ports: dict[str, int]

    def config(self, **overrides) -> LocalClusterConfig:
        values = {
            "data_dir": self.data_dir,
            "cockroach_bin": str(FAKE_COCKROACH),
            "live_data_dir": self.root / "live-elsewhere",
            "start_timeout_seconds": 20.0,
            "sql_port_base": self.ports["sql"],
            "listen_port_base": self.ports["listen"],
            "http_port_base": self.ports["http"],
        }
        values.update(overrides)
        return LocalClusterConfig(**values)

    def control(self, **overrides) -> LocalClusterControl:
        return LocalClusterControl(self.config(**overrides))

    def invocations(self, command: str | None = None) -> list[list[str]]:
        log = self.cluster_dir / "argv.log"
        if not log.exists():
            return []
        rows = [json.loads(line)["argv"] for line in log.read_text().splitlines() if line.strip()]
        return [r for r in rows if command is None or r[:1] == [command]]

    def fake_state(self) -> dict:
        return json.loads((self.cluster_dir / "fake-cluster.json").read_text())


@pytest.fixture
def local_env(tmp_path, monkeypatch) -> LocalClusterEnv:
    sql = free_port_base()
    listen = free_port_base(exclude=set(range(sql, sql + 3)))
    http = free_port_base(exclude=set(range(sql, sql + 3)) | set(range(listen, listen + 3)))
    cluster_dir = tmp_path / "fake-cluster"
    monkeypatch.setenv("FAKE_COCKROACH_CLUSTER_DIR", str(cluster_dir))
    monkeypatch.delenv("FAKE_COCKROACH_ARGV_LOG", raising=False)
    env = LocalClusterEnv(
        root=tmp_path,
        cluster_dir=cluster_dir,
        data_dir=tmp_path / "data",
        ports={"sql": sql, "listen": listen, "http": http},
    )
    yield env
    # Nodes are detached on purpose (they must outlive their starter): kill them by pid here.
    kill_all(node_pids_under(tmp_path))


def wait_ready(control: LocalClusterControl, nodes: int, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    status = control.status()
    while time.monotonic() < deadline:
        if status.is_ready(nodes):
            return status
        time.sleep(0.2)
        status = control.status()
    raise AssertionError(f"cluster not ready with {nodes} nodes: {status.summary()}")
