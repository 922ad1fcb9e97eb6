"""A CockroachDB cluster of local `cockroach` processes: the backend for a laptop, a plain CI runner and the
local nightly rehearsal. Same pipeline, same checks as the Kubernetes operator backend.

Layout of one cluster's data folder (default `.data/local`, the rehearsal uses `.data/rehearsal`):

    certs/            ca.crt, node.crt/key (127.0.0.1, localhost), client.<user>.crt/key (root, app_*)
    safe/ca.key       the CA key, kept out of certs/ as the CockroachDB docs advise
    node<i>/          node i's store
    run/node<i>.pid   pid of node i (plus a /proc check of its command line, so a reused pid is not ours)
    logs/node<i>.log  node i's stdout/stderr
    state.json        the node count asked for; init.done marks the one-time `cockroach init`
    prometheus/       file_sd targets and the CA for the local Prometheus (see write_prometheus_targets)

Nodes are started detached (own session, output to a log file) so they outlive the Dagster run worker
that started them, and are found again by pid file or /proc after a restart of Dagster. The main flow
never stops a node; `make local-stop` (stop_nodes) is the explicit way.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
from pydantic import Field

from evolution_pipeline.phases import PHASES, REPO_ROOT
from evolution_pipeline.resources.cluster import (
    LIVE,
    REHEARSAL,
    ClusterControl,
    ClusterControlError,
    ClusterControlResource,
    ClusterStatus,
    NodeStatus,
)

log = logging.getLogger(__name__)

MISSING_BINARY_MESSAGE = (
    "No CockroachDB binary found (looked at $COCKROACH_BIN, then `cockroach` on PATH). "
    "Get the official one: open https://www.cockroachlabs.com/docs/releases/, download the Linux tarball "
    "(cockroach-<version>.linux-amd64.tgz), extract it, then put `cockroach` on your PATH or set "
    "COCKROACH_BIN=/path/to/cockroach, and run this again."
)

# The largest cluster the phase table grows to: every node's --join lists all of them from the start,
# so node 1 started in phase 0 and node 3 started in phase 2 carry the identical list.
MAX_NODES = max(p.nodes for p in PHASES)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEFAULT_ZONES = ("local-a", "local-b", "local-c")
DEFAULT_DATA_DIRS = {LIVE: REPO_ROOT / ".data" / "local", REHEARSAL: REPO_ROOT / ".data" / "rehearsal"}
OWNER_MARKER = ".crdb-local-cluster"
CLIENT_USERS = ("root", "app_writer", "app_reader")


def find_cockroach(explicit: str = "", env: dict | None = None) -> str | None:
    """The cockroach binary: an explicit path, else $COCKROACH_BIN, else PATH. None when there is none."""
    env = os.environ if env is None else env
    candidate = explicit or env.get("COCKROACH_BIN", "")
    if candidate:
        path = Path(candidate).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which("cockroach", path=env.get("PATH"))


def require_cockroach(explicit: str = "", env: dict | None = None) -> str:
    found = find_cockroach(explicit, env)
    if found:
        return found
    candidate = explicit or (os.environ if env is None else env).get("COCKROACH_BIN", "")
    prefix = f"{candidate!r} is not an executable file. " if candidate else ""
    raise ClusterControlError(prefix + MISSING_BINARY_MESSAGE)


@dataclass(frozen=True)
class LocalNode:
    index: int  # 1-based
    host: str
    sql_port: int
    listen_port: int
    http_port: int
    store: Path
    locality: str

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def sql_addr(self) -> str:
        return f"{self.host}:{self.sql_port}"

    @property
    def listen_addr(self) -> str:
        return f"{self.host}:{self.listen_port}"

    @property
    def http_addr(self) -> str:
        return f"{self.host}:{self.http_port}"

    def ports(self) -> dict[str, int]:
        return {"SQL": self.sql_port, "gRPC": self.listen_port, "HTTP": self.http_port}


@dataclass(frozen=True)
class LocalClusterConfig:
    data_dir: Path
    cockroach_bin: str | None  # None: no binary; everything that needs it raises MISSING_BINARY_MESSAGE
    environment: str = LIVE
    live_data_dir: Path = DEFAULT_DATA_DIRS[LIVE]
    host: str = "127.0.0.1"
    sql_port_base: int = 26257
    listen_port_base: int = 26357
    http_port_base: int = 8080
    insecure: bool = False
    region: str = "local"
    zones: tuple[str, ...] = DEFAULT_ZONES
    cache: str = "128MiB"
    max_sql_memory: str = "128MiB"
    cluster_label: str = "local"
    prometheus_dir: Path | None = None  # default <data_dir>/prometheus
    max_nodes: int = MAX_NODES
    start_timeout_seconds: float = 60.0
    command_timeout_seconds: float = 30.0
    extra_start_flags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.host not in LOOPBACK_HOSTS:
            raise ClusterControlError(
                f"local cluster host {self.host!r} is not a loopback address: the local backend only listens on "
                "127.0.0.1 (its node certificates are made for 127.0.0.1 and localhost)"
            )
        if self.environment not in (LIVE, REHEARSAL):
            raise ClusterControlError(
                f"unknown environment {self.environment!r}: use {LIVE!r} or {REHEARSAL!r}"
            )


class LocalClusterControl(ClusterControl):
    """Node i: `cockroach start` on 127.0.0.1 with ports <base>+i-1 and store <data_dir>/node<i>."""

    def __init__(self, config: LocalClusterConfig):
        self.config = config
        self.data_dir = config.data_dir.resolve()
        self.certs_dir = self.data_dir / "certs"
        self.ca_key = self.data_dir / "safe" / "ca.key"
        self.run_dir = self.data_dir / "run"
        self.logs_dir = self.data_dir / "logs"
        self.state_file = self.data_dir / "state.json"
        self.init_marker = self.data_dir / "init.done"
        self.prometheus_dir = (config.prometheus_dir or self.data_dir / "prometheus").resolve()

    # --- naming ----------------------------------------------------------------------------------------

    def describe(self) -> str:
        mode = "INSECURE (--insecure, no TLS, passwords not checked)" if self.config.insecure else "secure"
        return f"local CockroachDB cluster {self.config.cluster_label!r} in {self.data_dir} ({mode}, {self.config.environment})"

    def node(self, index: int) -> LocalNode:
        if not 1 <= index <= self.config.max_nodes:
            raise ClusterControlError(
                f"node {index} does not exist: the local cluster has nodes 1..{self.config.max_nodes}"
            )
        c = self.config
        zone = c.zones[(index - 1) % len(c.zones)]
        return LocalNode(
            index=index,
            host=c.host,
            sql_port=c.sql_port_base + index - 1,
            listen_port=c.listen_port_base + index - 1,
            http_port=c.http_port_base + index - 1,
            store=self.data_dir / f"node{index}",
            locality=f"region={c.region},zone={zone}",
        )

    def nodes(self, count: int | None = None) -> list[LocalNode]:
        return [self.node(i) for i in range(1, (self.config.max_nodes if count is None else count) + 1)]

    def join_list(self) -> str:
        return ",".join(n.listen_addr for n in self.nodes())

    def binary(self) -> str:
        if not self.config.cockroach_bin:
            raise ClusterControlError(MISSING_BINARY_MESSAGE)
        return self.config.cockroach_bin

    def security_flags(self) -> list[str]:
        return ["--insecure"] if self.config.insecure else [f"--certs-dir={self.certs_dir}"]

    # --- desired count -----------------------------------------------------------------------------------

    def _read_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ClusterControlError(
                f"cannot read {self.state_file}: {exc}; fix or remove the file"
            ) from exc

    def _write_state(self, **changes) -> None:
        state = {**self._read_state(), **changes}
        _atomic_write(self.state_file, json.dumps(state, indent=2) + "\n")

    def desired_nodes(self) -> int:
        recorded = int(self._read_state().get("desired_nodes", 0))
        # Nodes found running count too: a lost state file must never make the pipeline think it may
        # start from zero (and so re-init or re-phase an existing cluster).
        running = max(self.running_nodes(), default=0)
        return max(recorded, running)

    def set_desired_nodes(self, nodes: int) -> None:
        binary = self.binary()
        if not 1 <= nodes <= self.config.max_nodes:
            raise ClusterControlError(
                f"cannot run {nodes} nodes locally: the local cluster has room for 1..{self.config.max_nodes} "
                "(the phase table's largest phase)"
            )
        self._prepare_data_dir()
        self.ensure_certs(binary, ca_only=self.config.insecure)
        if self.config.insecure:
            log.warning("%s: starting nodes with --insecure because it was asked for", self.describe())
        running = self.running_nodes()
        for node in self.nodes(nodes):
            if node.index in running:
                log.info(
                    "%s already running (pid %s); not starting a duplicate", node.name, running[node.index]
                )
                continue
            self.start_node(node, binary)
            if node.index == 1:
                self.initialize(binary)
        # Also when node 1 was already running: an init that failed last time is retried (it is a no-op
        # once the marker exists, and "already initialized" counts as done).
        self.initialize(binary)
        self._write_state(desired_nodes=max(nodes, int(self._read_state().get("desired_nodes", 0))))
        self.write_prometheus_targets(nodes)

    # --- processes ---------------------------------------------------------------------------------------

    def pid_file(self, node: LocalNode) -> Path:
        return self.run_dir / f"{node.name}.pid"

    def log_file(self, node: LocalNode) -> Path:
        return self.logs_dir / f"{node.name}.log"

    def node_pid(self, node: LocalNode) -> int | None:
        """The pid of our process for `node`, by pid file first, then by a /proc scan for its --store."""
        try:
            pid = int(self.pid_file(node).read_text().strip())
        except (FileNotFoundError, ValueError):
            pid = None
        if pid and _is_node_process(pid, node.store):
            return pid
        for candidate in _all_pids():
            if _is_node_process(candidate, node.store):
                # Started by hand or the pid file was lost: adopt it rather than start a duplicate.
                _atomic_write(self.pid_file(node), f"{candidate}\n")
                return candidate
        return None

    def running_nodes(self) -> dict[int, int]:
        """{node index: pid} of the nodes of this data folder that have a live process."""
        found = {}
        for node in self.nodes():
            pid = self.node_pid(node)
            if pid:
                found[node.index] = pid
        return found

    def check_ports_free(self, node: LocalNode) -> None:
        taken = [
            f"{kind} port {port}" for kind, port in node.ports().items() if _port_in_use(node.host, port)
        ]
        if taken:
            raise ClusterControlError(
                f"cannot start {node.name} of {self.describe()}: {', '.join(taken)} on {node.host} "
                f"{'is' if len(taken) == 1 else 'are'} already in use by another process that is not a node of this "
                f"cluster (no process with --store={node.store}). Stop that process, or give this cluster other "
                "ports (LocalClusterResource sql_port_base / listen_port_base / http_port_base, or "
                "LOCAL_CRDB_SQL_PORT_BASE / LOCAL_CRDB_LISTEN_PORT_BASE / LOCAL_CRDB_HTTP_PORT_BASE for make dev)."
            )

    def start_args(self, node: LocalNode, binary: str) -> list[str]:
        c = self.config
        return [
            binary,
            "start",
            *self.security_flags(),
            f"--store={node.store}",
            f"--listen-addr={node.listen_addr}",
            f"--sql-addr={node.sql_addr}",
            f"--http-addr={node.http_addr}",
            f"--join={self.join_list()}",
            f"--locality={node.locality}",
            f"--cache={c.cache}",
            f"--max-sql-memory={c.max_sql_memory}",
            *c.extra_start_flags,
        ]

    def start_node(self, node: LocalNode, binary: str) -> int:
        self.check_ports_free(node)
        for d in (self.run_dir, self.logs_dir, node.store):
            d.mkdir(parents=True, exist_ok=True)
        args = self.start_args(node, binary)
        with open(self.log_file(node), "ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {' '.join(args)}\n".encode())
            out.flush()
            # Own session: the node is not in the Dagster run worker's process group, so it survives the
            # worker's exit and a Ctrl-C of `make dev`.
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                close_fds=True,
            )
        _atomic_write(self.pid_file(node), f"{proc.pid}\n")
        log.info("started %s (pid %s): %s", node.name, proc.pid, " ".join(args))
        self._wait_listening(node, proc)
        return proc.pid

    def _wait_listening(self, node: LocalNode, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + self.config.start_timeout_seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file(node).unlink(missing_ok=True)
                raise ClusterControlError(
                    f"{node.name} exited at start (code {proc.returncode}); last lines of {self.log_file(node)}:\n"
                    + _tail(self.log_file(node))
                )
            if _port_accepts(node.host, node.listen_port):
                return
            time.sleep(0.1)
        raise ClusterControlError(
            f"{node.name} (pid {proc.pid}) did not listen on {node.listen_addr} within "
            f"{self.config.start_timeout_seconds:.0f}s; see {self.log_file(node)}"
        )

    def initialize(self, binary: str) -> None:
        """`cockroach init` exactly once per cluster (marker file; 'already initialized' counts as done)."""
        if self.init_marker.exists():
            return
        first = self.node(1)
        args = [binary, "init", *self.security_flags(), f"--host={first.listen_addr}"]
        deadline = time.monotonic() + self.config.start_timeout_seconds
        while True:
            result = self._run(args)
            output = (result.stdout + result.stderr).strip()
            if result.returncode == 0 or "already been initialized" in output:
                _atomic_write(self.init_marker, f"{time.time():.0f} {output}\n")
                log.info("cluster initialized through %s: %s", first.listen_addr, output)
                return
            if time.monotonic() > deadline:
                raise ClusterControlError(f"`{' '.join(args)}` failed (exit {result.returncode}): {output}")
            time.sleep(1.0)

    def _run(self, args: list[str]) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                args,
                check=False,
                capture_output=True,
                text=True,
                timeout=self.config.command_timeout_seconds,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return subprocess.CompletedProcess(args, 124, out, f"timed out after {exc.timeout}s")
        except OSError as exc:
            raise ClusterControlError(f"cannot run {args[0]}: {exc}. {MISSING_BINARY_MESSAGE}") from exc

    def stop_nodes(self, timeout: float = 60.0) -> list[str]:
        """Stop this data folder's nodes (SIGTERM drains; SIGKILL after `timeout`). Never used by the evolution:
        only `make local-stop` and the rehearsal reset call it."""
        stopped = []
        for node in self.nodes():
            pid = self.node_pid(node)
            if not pid:
                continue
            _terminate(pid, timeout)
            self.pid_file(node).unlink(missing_ok=True)
            stopped.append(f"{node.name} (pid {pid})")
        return stopped

    # --- certificates ------------------------------------------------------------------------------------

    def ensure_certs(self, binary: str, ca_only: bool = False) -> None:
        """A local CA plus node and client certificates, made once with `cockroach cert` (`ca_only`: just
        the CA, for an insecure cluster's Prometheus, see prepare_prometheus)."""
        self.certs_dir.mkdir(parents=True, exist_ok=True)
        self.ca_key.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.ca_key.parent, 0o700)
        common = [f"--certs-dir={self.certs_dir}", f"--ca-key={self.ca_key}"]
        steps = [
            (self.certs_dir / "ca.crt", ["cert", "create-ca", *common]),
            (self.certs_dir / "node.crt", ["cert", "create-node", "127.0.0.1", "localhost", *common]),
        ]
        steps += [
            (self.certs_dir / f"client.{user}.crt", ["cert", "create-client", user, *common])
            for user in CLIENT_USERS
        ]
        for produced, args in steps[:1] if ca_only else steps:
            if produced.exists():
                continue
            if not self.ca_key.exists() and args[1] != "create-ca":
                raise ClusterControlError(
                    f"{produced} is missing and the CA key {self.ca_key} is gone, so it cannot be made again; "
                    f"restore the key or move {self.certs_dir} away to start with a new CA"
                )
            result = self._run([binary, *args])
            if result.returncode != 0:
                raise ClusterControlError(
                    f"`cockroach {' '.join(args)}` failed: {(result.stderr or result.stdout).strip()}"
                )

    # --- readiness ---------------------------------------------------------------------------------------

    def health_url(self, node: LocalNode) -> str:
        scheme = "http" if self.config.insecure else "https"
        return f"{scheme}://{node.http_addr}/health?ready=1"

    def _verify(self) -> ssl.SSLContext | bool:
        if self.config.insecure:
            return False
        return ssl.create_default_context(cafile=str(self.certs_dir / "ca.crt"))

    def node_health(self, node: LocalNode) -> tuple[bool, str]:
        try:
            verify = self._verify()
            r = httpx.get(self.health_url(node), verify=verify, timeout=3.0)
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            return False, f"/health?ready=1 unreachable: {exc}"
        return r.status_code == 200, f"/health?ready=1 -> {r.status_code}"

    def reported_nodes(self, running: dict[int, int]) -> tuple[list[dict] | None, str]:
        """Rows of `cockroach node status --format=csv`, asked of the first running node's SQL port."""
        if not running or not self.config.cockroach_bin:
            return None, "no running node to ask for `cockroach node status`"
        node = self.node(min(running))
        args = [
            self.config.cockroach_bin,
            "node",
            "status",
            "--format=csv",
            *self.security_flags(),
            f"--host={node.sql_addr}",
        ]
        result = self._run(args)
        if result.returncode != 0:
            return (
                None,
                f"`cockroach node status` on {node.sql_addr} failed: {(result.stderr or result.stdout).strip()}",
            )
        return parse_node_status_csv(result.stdout), ""

    def status(self) -> ClusterStatus:
        desired = self.desired_nodes()
        running = self.running_nodes()
        count = max([desired, *running])
        rows, problem = self.reported_nodes(running)
        live = {
            addr
            for row in rows or []
            if _is_true(row.get("is_live"))
            for addr in (row.get("address"), row.get("sql_address"))
        }
        nodes = []
        for node in self.nodes(count):
            if node.index not in running:
                nodes.append(NodeStatus(node.name, False, f"no process (see {self.log_file(node)})"))
                continue
            ready, detail = self.node_health(node)
            if ready and rows is not None and node.listen_addr not in live and node.sql_addr not in live:
                ready, detail = False, f"{detail}; not live in `cockroach node status` yet"
            nodes.append(NodeStatus(node.name, ready, f"pid {running[node.index]}, {detail}"))
        reported_live = sum(1 for row in rows or [] if _is_true(row.get("is_live")))
        message = problem or f"cockroach node status reports {reported_live} live node(s)"
        return ClusterStatus(
            desired_nodes=desired,
            ready_nodes=min(sum(n.ready for n in nodes), reported_live),
            settled=all(i in running for i in range(1, desired + 1)),
            nodes=tuple(nodes),
            message=message,
        )

    # --- Prometheus file_sd ------------------------------------------------------------------------------

    def targets_file(self) -> Path:
        # One Prometheus scrapes targets/cockroachdb*.json: the live cluster writes cockroachdb.json and a
        # rehearsal pointed at the same folder writes its own file, so neither overwrites the other.
        name = (
            "cockroachdb.json"
            if self.config.environment == LIVE
            else f"cockroachdb-{self.config.environment}.json"
        )
        return self.prometheus_dir / "targets" / name

    def prepare_prometheus(self) -> Path:
        """Run before Prometheus starts. Its `cockroachdb` job is https with certs/ca.crt, and Prometheus
        builds a job only when it loads its config: without the file the job is dropped until a restart.
        So the CA is made first (later CAs appended to the bundle are re-read by Prometheus). An insecure
        cluster gets a CA too, which signs nothing: it only lets the job load; its targets say http."""
        binary = self.binary()
        self._prepare_data_dir()
        self.ensure_certs(binary, ca_only=self.config.insecure)
        return self.write_prometheus_targets(min(self.desired_nodes(), self.config.max_nodes))

    def write_prometheus_targets(self, nodes: int) -> Path:
        labels = {"cluster": self.config.cluster_label}
        if self.config.insecure:
            labels["__scheme__"] = (
                "http"  # an insecure node's HTTP port has no TLS; the scrape job defaults to https
            )
        entry = {"targets": [n.http_addr for n in self.nodes(nodes)], "labels": labels}
        target = self.targets_file()
        _atomic_write(target, json.dumps([entry] if nodes else [], indent=2) + "\n")
        ca = self.certs_dir / "ca.crt"
        if ca.exists():
            # certs/ca.crt is a bundle: every local cluster scraped by this Prometheus adds its CA once.
            bundle = self.prometheus_dir / "certs" / "ca.crt"
            pem = ca.read_text()
            existing = bundle.read_text() if bundle.exists() else ""
            if pem.strip() not in existing:
                _atomic_write(
                    bundle, existing + ("" if not existing or existing.endswith("\n") else "\n") + pem
                )
        return target

    # --- connection strings ------------------------------------------------------------------------------

    def sql_url(
        self, node: int | list[int], user: str = "root", database: str = "app", password: str | None = None
    ) -> str:
        """postgresql:// URL for `user` on node `node` (or several nodes, tried in order by libpq): TLS
        verify-full against the local CA, with the user's client certificate when there is one and no
        password was given."""
        nodes = [self.node(i) for i in ([node] if isinstance(node, int) else node)]
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        if self.config.insecure:
            params = {"sslmode": "disable"}
        else:
            params = {"sslmode": "verify-full", "sslrootcert": str(self.certs_dir / "ca.crt")}
            cert, key = self.certs_dir / f"client.{user}.crt", self.certs_dir / f"client.{user}.key"
            if not password and (cert.exists() or user in CLIENT_USERS):
                params |= {"sslcert": str(cert), "sslkey": str(key)}
        hosts = ",".join(n.sql_addr for n in nodes)
        return f"postgresql://{auth}@{hosts}/{quote(database, safe='')}?{urlencode(params, safe='/')}"

    def endpoints(self) -> dict[str, str]:
        """Local stand-ins for the Kubernetes Services: crdb-writer is node 1; crdb-reader is node 2 once
        phase 1 has run (any node serves any read, node 2 just spreads the reader path)."""
        reader = 2 if self.desired_nodes() >= 2 else 1
        return {"crdb-writer": self.node(1).sql_addr, "crdb-reader": self.node(reader).sql_addr}

    def writer_url(self, password: str | None = None, user: str = "app_writer") -> str:
        return self.sql_url(1, user, "app", password)

    def reader_url(self, password: str | None = None, user: str = "app_reader") -> str:
        """Node 2 first, node 1 next: libpq tries the hosts in order on every new connection, so an app
        started before phase 1 reads from node 1 and moves its new connections to node 2 once it exists."""
        order = [2, 1] if self.config.max_nodes >= 2 else [1]
        return self.sql_url(order, user, "app", password)

    # --- rehearsal ---------------------------------------------------------------------------------------

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        marker = self.data_dir / OWNER_MARKER
        if not marker.exists():
            marker.write_text(
                "Made by evolution_pipeline.resources.local: a local CockroachDB cluster's data folder.\n"
            )

    def reset_rehearsal_environment(self) -> str:
        c = self.config
        if c.environment != REHEARSAL:
            raise ClusterControlError(
                f"refusing to reset {self.describe()}: its environment is {c.environment!r}; only a "
                f"{REHEARSAL!r} environment may be wiped"
            )
        live = c.live_data_dir.resolve()
        if self.data_dir == live or self.data_dir in live.parents or live in self.data_dir.parents:
            raise ClusterControlError(
                f"refusing to reset the rehearsal: its data folder {self.data_dir} is (or overlaps) the live "
                f"cluster's {live}. Give the rehearsal its own folder, e.g. {DEFAULT_DATA_DIRS[REHEARSAL]}"
            )
        if (
            self.data_dir.exists()
            and any(self.data_dir.iterdir())
            and not (self.data_dir / OWNER_MARKER).exists()
        ):
            raise ClusterControlError(
                f"refusing to delete {self.data_dir}: it is not empty and has no {OWNER_MARKER} marker, so it "
                "was not made by this pipeline. Point the rehearsal at its own folder."
            )
        stopped = self.stop_nodes()
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        if not self.prometheus_dir.is_relative_to(self.data_dir):
            self.targets_file().unlink(missing_ok=True)
        return f"rehearsal reset: stopped {', '.join(stopped) or 'no nodes'}; wiped {self.data_dir}"


# --- small process and file helpers -----------------------------------------------------------------------


def parse_node_status_csv(text: str) -> list[dict]:
    """Rows of `cockroach node status --format=csv` (header: id,address,sql_address,...,is_available,is_live)."""
    lines = [line for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("id,")), None)
    if start is None:
        return []
    return list(csv.DictReader(io.StringIO("\n".join(lines[start:]))))


def _is_true(value) -> bool:
    return str(value).strip().lower() == "true"


def _in_repo(path: str) -> Path:
    """Relative folders are relative to the repository, wherever Dagster's working directory is."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _is_node_process(pid: int, store: Path) -> bool:
    """True when pid is alive (not a zombie) and is `cockroach start ... --store=<store>`."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    return "start" in argv and f"--store={store}" in argv


def _port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        try:  # our own child (tests, the CLI): reap it
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


# --- the Dagster resource ---------------------------------------------------------------------------------


class LocalClusterResource(ClusterControlResource):
    """Cluster control over local `cockroach` processes (EVOLUTION_CLUSTER_BACKEND=local).

    Empty strings mean "work it out": cockroach_bin from $COCKROACH_BIN or PATH, data_dir `.data/local`
    (live) or `.data/rehearsal` (rehearsal). A rehearsal needs its own data_dir and port bases.
    """

    cockroach_bin: str = Field(default="", description="cockroach binary; empty: $COCKROACH_BIN, then PATH")
    data_dir: str = Field(default="", description="data folder; empty: .data/local (live) or .data/rehearsal")
    live_data_dir: str = Field(
        default="", description="the live cluster's data folder a rehearsal must never touch"
    )
    host: str = "127.0.0.1"
    sql_port_base: int = 26257
    listen_port_base: int = 26357
    http_port_base: int = 8080
    insecure: bool = Field(default=False, description="start nodes with --insecure (no TLS, no passwords)")
    region: str = "local"
    zones: list[str] = Field(default_factory=lambda: list(DEFAULT_ZONES))
    cache: str = "128MiB"
    max_sql_memory: str = "128MiB"
    cluster_label: str = "local"
    prometheus_dir: str = Field(
        default="", description="Prometheus runtime folder; empty: <data_dir>/prometheus"
    )
    node_start_timeout_seconds: float = 60.0

    def config(self) -> LocalClusterConfig:
        live_dir = _in_repo(self.live_data_dir) if self.live_data_dir else DEFAULT_DATA_DIRS[LIVE]
        data_dir = (
            _in_repo(self.data_dir) if self.data_dir else DEFAULT_DATA_DIRS.get(self.environment, live_dir)
        )
        return LocalClusterConfig(
            data_dir=data_dir,
            cockroach_bin=find_cockroach(self.cockroach_bin),
            environment=self.environment,
            live_data_dir=live_dir,
            host=self.host,
            sql_port_base=self.sql_port_base,
            listen_port_base=self.listen_port_base,
            http_port_base=self.http_port_base,
            insecure=self.insecure,
            region=self.region,
            zones=tuple(self.zones) or DEFAULT_ZONES,
            cache=self.cache,
            max_sql_memory=self.max_sql_memory,
            cluster_label=self.cluster_label,
            prometheus_dir=_in_repo(self.prometheus_dir) if self.prometheus_dir else None,
            start_timeout_seconds=self.node_start_timeout_seconds,
        )

    def control(self) -> LocalClusterControl:
        # Fail at once (the first op of a phase) when there is no binary, with the one message on getting it.
        require_cockroach(self.cockroach_bin)
        return LocalClusterControl(self.config())

    @classmethod
    def from_environment(cls, env=LIVE, environ: dict | None = None, **fields) -> LocalClusterResource:
        """Build the resource from environment variables (see settings_from_env); `env` is "live",
        "rehearsal" or an object with that `.name`. Explicit `fields` win over the environment."""
        name = getattr(env, "name", env)
        return cls(**({"environment": name} | settings_from_env(name, environ) | fields))

    from_env = from_environment


def settings_from_env(environment: str = LIVE, env: dict | None = None) -> dict:
    """LocalClusterResource fields from environment variables; the rehearsal reads the REHEARSAL_ twins.

    live:      COCKROACH_BIN, LOCAL_CRDB_DATA_DIR (.data/local), LOCAL_CRDB_SQL_PORT_BASE (26257),
               LOCAL_CRDB_LISTEN_PORT_BASE (26357), LOCAL_CRDB_HTTP_PORT_BASE (8080), LOCAL_CRDB_INSECURE (false),
               CRDB_CLUSTER_LABEL (local), LOCAL_CRDB_PROMETHEUS_DIR (<live data dir>/prometheus)
    rehearsal: REHEARSAL_LOCAL_CRDB_DATA_DIR (.data/rehearsal), REHEARSAL_LOCAL_CRDB_SQL_PORT_BASE (26457),
               REHEARSAL_LOCAL_CRDB_LISTEN_PORT_BASE (26557), REHEARSAL_LOCAL_CRDB_HTTP_PORT_BASE (8090),
               REHEARSAL_LOCAL_CRDB_INSECURE, REHEARSAL_CRDB_CLUSTER_LABEL (local-rehearsal). Same binary; its
               file_sd targets go to the live Prometheus folder as targets/cockroachdb-rehearsal.json, so the one
               local Prometheus scrapes both clusters; live_data_dir is the live LOCAL_CRDB_DATA_DIR.
    """
    env = os.environ if env is None else env
    rehearsal = environment != LIVE
    defaults = REHEARSAL_DEFAULTS if rehearsal else LIVE_DEFAULTS

    def get(name: str) -> str:
        return env.get(f"REHEARSAL_{name}" if rehearsal else name) or defaults[name]

    live_dir = env.get("LOCAL_CRDB_DATA_DIR") or LIVE_DEFAULTS["LOCAL_CRDB_DATA_DIR"]
    return {
        "cockroach_bin": env.get("COCKROACH_BIN", ""),
        "data_dir": get("LOCAL_CRDB_DATA_DIR"),
        "live_data_dir": live_dir,
        "prometheus_dir": env.get("LOCAL_CRDB_PROMETHEUS_DIR") or str(Path(live_dir) / "prometheus"),
        "sql_port_base": int(get("LOCAL_CRDB_SQL_PORT_BASE")),
        "listen_port_base": int(get("LOCAL_CRDB_LISTEN_PORT_BASE")),
        "http_port_base": int(get("LOCAL_CRDB_HTTP_PORT_BASE")),
        "insecure": get("LOCAL_CRDB_INSECURE").lower() in {"1", "true", "yes"},
        "cluster_label": get("CRDB_CLUSTER_LABEL"),
    }


LIVE_DEFAULTS = {
    "LOCAL_CRDB_DATA_DIR": ".data/local",
    "LOCAL_CRDB_SQL_PORT_BASE": "26257",
    "LOCAL_CRDB_LISTEN_PORT_BASE": "26357",
    "LOCAL_CRDB_HTTP_PORT_BASE": "8080",
    "LOCAL_CRDB_INSECURE": "false",
    "CRDB_CLUSTER_LABEL": "local",
}
REHEARSAL_DEFAULTS = {
    "LOCAL_CRDB_DATA_DIR": ".data/rehearsal",
    "LOCAL_CRDB_SQL_PORT_BASE": "26457",
    "LOCAL_CRDB_LISTEN_PORT_BASE": "26557",
    "LOCAL_CRDB_HTTP_PORT_BASE": "8090",
    "LOCAL_CRDB_INSECURE": "false",
    "CRDB_CLUSTER_LABEL": "local-rehearsal",
}


# --- a small CLI for make dev / make local-status / make local-stop ---------------------------------------


def _cli(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m evolution_pipeline.resources.local",
        description="The local CockroachDB cluster, from the environment make dev sets.",
    )
    parser.add_argument(
        "command",
        choices=[
            "find-binary",
            "missing-binary-message",
            "status",
            "stop",
            "app-urls",
            "admin-urls",
            "prepare-prometheus",
        ],
    )
    parser.add_argument("--environment", default=LIVE, choices=[LIVE, REHEARSAL])
    args = parser.parse_args(argv)
    if args.command == "missing-binary-message":
        print(MISSING_BINARY_MESSAGE)
        return 0
    if args.command == "find-binary":
        found = find_cockroach()
        print(found or MISSING_BINARY_MESSAGE, file=sys.stdout if found else sys.stderr)
        return 0 if found else 1
    resource = LocalClusterResource.from_environment(args.environment)
    control = LocalClusterControl(resource.config())
    if args.command == "status":
        print(control.describe())
        if not control.config.cockroach_bin:
            print(MISSING_BINARY_MESSAGE)
        print(control.status().summary())
        for name, addr in control.endpoints().items():
            print(f"{name}: {addr}")
    elif args.command == "stop":
        stopped = control.stop_nodes()
        print(
            f"stopped {', '.join(stopped)}" if stopped else f"no running nodes found for {control.data_dir}"
        )
    elif args.command == "app-urls":
        import shlex

        print(f"APP_DB_WRITER_URL={shlex.quote(control.writer_url(os.environ.get('APP_WRITER_PASSWORD')))}")
        print(f"APP_DB_READER_URL={shlex.quote(control.reader_url(os.environ.get('APP_READER_PASSWORD')))}")
    elif args.command == "admin-urls":
        import shlex

        # root over its client certificate; the pipeline's SQL resource reads these (CRDB_ADMIN_URL and
        # the REHEARSAL_ twin). Printed even without a binary, so a phase fails on the binary message.
        rehearsal = LocalClusterControl(LocalClusterResource.from_environment(REHEARSAL).config())
        print(f"CRDB_ADMIN_URL={shlex.quote(control.sql_url(1, 'root', 'defaultdb'))}")
        print(f"REHEARSAL_CRDB_ADMIN_URL={shlex.quote(rehearsal.sql_url(1, 'root', 'defaultdb'))}")
    elif args.command == "prepare-prometheus":
        if control.config.cockroach_bin:
            control.prepare_prometheus()
        else:
            control.write_prometheus_targets(0)
        print(control.prometheus_dir)
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
