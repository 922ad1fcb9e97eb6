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
import hashlib
import io
import json
import logging
import os
import re
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx

from crdb_common import httpc
from evolution_pipeline.phases import LAST_PHASE, PHASES, REPO_ROOT
from evolution_pipeline.resources.cluster_control import (
    LIVE,
    REHEARSAL,
    ClusterControl,
    ClusterControlError,
    ClusterStatus,
    NodeStatus,
)

log = logging.getLogger(__name__)

from .binary import MISSING_BINARY_MESSAGE
from .processes import (
    all_pids,
    atomic_write,
    is_node_process,
    port_accepts,
    port_in_use,
    tail,
    terminate,
)

MAX_NODES = max(p.nodes for p in PHASES)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEFAULT_ZONES = ("local-a", "local-b", "local-c")
DEFAULT_DATA_DIRS = {LIVE: REPO_ROOT / ".data" / "local", REHEARSAL: REPO_ROOT / ".data" / "rehearsal"}
OWNER_MARKER = ".crdb-local-cluster"
# Client certificates: root (the pipeline) and the app paths' first rotation users (an app started without a
# password). A certificate is not rotated by rotate_credentials: the rotating app logs in with passwords.
CLIENT_USERS = ("root", "app_rw_01", "app_ro_01")
# A license key is base64-like text; anything else (a placeholder, a quote) is refused before it reaches SQL,
# the same check as k8s/license-job.yaml.
LICENSE_KEY = re.compile(r"^[A-Za-z0-9+/=._-]+$")
LICENSE_FILE = REPO_ROOT / ".data" / "license"


def local_license(env: dict | None = None) -> str:
    """The license key for the local clusters: $CRDB_LICENSE, else the file $CRDB_LICENSE_FILE (default
    .data/license, gitignored), else "" (none: a multi-node cluster is throttled 7 days after init)."""
    env = os.environ if env is None else env
    key = env.get("CRDB_LICENSE", "").strip()
    path = Path(env.get("CRDB_LICENSE_FILE") or LICENSE_FILE)
    if not key and path.is_file():
        key = "".join(path.read_text().split())
    return key


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
    # Node i's --locality: the evolution file's (the last phase lists every node; a node keeps its locality).
    localities: tuple[str, ...] = LAST_PHASE.localities
    # Overrides for drills and tests only: with zones set, node i gets region=<region>,zone=zones[(i-1)%len].
    region: str = "local"
    zones: tuple[str, ...] = ()
    cache: str = "128MiB"
    max_sql_memory: str = "128MiB"
    cluster_label: str = "local"
    prometheus_dir: Path | None = None  # default <data_dir>/prometheus
    max_nodes: int = MAX_NODES
    start_timeout_seconds: float = 60.0
    command_timeout_seconds: float = 30.0
    extra_start_flags: tuple[str, ...] = field(default_factory=tuple)
    # Read from the environment, never a Dagster config field (it would show in the UI); kept out of repr.
    license_key: str = field(default_factory=local_license, repr=False)

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
        return LocalNode(
            index=index,
            host=c.host,
            sql_port=c.sql_port_base + index - 1,
            listen_port=c.listen_port_base + index - 1,
            http_port=c.http_port_base + index - 1,
            store=self.data_dir / f"node{index}",
            locality=self.locality(index),
        )

    def locality(self, index: int) -> str:
        """The evolution file's locality for node `index`, unless zones are overridden (then the old
        round-robin, e.g. one zone for every node to provoke a pin clash)."""
        c = self.config
        if c.zones or index > len(c.localities):
            zones = c.zones or DEFAULT_ZONES
            return f"region={c.region},zone={zones[(index - 1) % len(zones)]}"
        return c.localities[index - 1]

    def planned_localities(self, nodes: int) -> dict[int, str]:
        return {n.index: n.locality for n in self.nodes(min(nodes, self.config.max_nodes))}

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
        atomic_write(self.state_file, json.dumps(state, indent=2) + "\n")

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
        self.apply_license(binary, nodes)
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
        if pid and is_node_process(pid, node.store):
            return pid
        for candidate in all_pids():
            if is_node_process(candidate, node.store):
                # Started by hand or the pid file was lost: adopt it rather than start a duplicate.
                atomic_write(self.pid_file(node), f"{candidate}\n")
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
            f"{kind} port {port}" for kind, port in node.ports().items() if port_in_use(node.host, port)
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
        atomic_write(self.pid_file(node), f"{proc.pid}\n")
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
                    + tail(self.log_file(node))
                )
            if port_accepts(node.host, node.listen_port):
                return
            time.sleep(0.1)
        raise ClusterControlError(
            f"{node.name} (pid {proc.pid}) did not listen on {node.listen_addr} within "
            f"{self.config.start_timeout_seconds:.0f}s; see {self.log_file(node)}"
        )

    def init_args(self, binary: str) -> list[str]:
        return [binary, "init", *self.security_flags(), f"--host={self.node(1).listen_addr}"]

    def initialize(self, binary: str) -> None:
        """`cockroach init` exactly once per cluster (marker file; 'already initialized' counts as done)."""
        if self.init_marker.exists():
            return
        first = self.node(1)
        args = self.init_args(binary)
        deadline = time.monotonic() + self.config.start_timeout_seconds
        while True:
            result = self._run(args)
            output = (result.stdout + result.stderr).strip()
            if result.returncode == 0 or "already been initialized" in output:
                atomic_write(self.init_marker, f"{time.time():.0f} {output}\n")
                log.info("cluster initialized through %s: %s", first.listen_addr, output)
                return
            if time.monotonic() > deadline:
                raise ClusterControlError(f"`{' '.join(args)}` failed (exit {result.returncode}): {output}")
            time.sleep(1.0)

    def apply_license(self, binary: str, nodes: int) -> None:
        """SET CLUSTER SETTING enterprise.license once the cluster has nodes, once per key (a marker holds
        the key's hash, never the key). Since v24.3 a multi-node cluster without a license is throttled
        7 days after init (docs: licensing FAQs), so a missing key is a warning, not a failure."""
        key = self.config.license_key
        if not key:
            if nodes >= 2:
                log.warning("%s has %d nodes and no license: it is throttled 7 days after init. Set CRDB_LICENSE "
                            "or put the key in %s, then re-execute the run", self.describe(), nodes, LICENSE_FILE)
            return
        if not LICENSE_KEY.match(key):
            raise ClusterControlError(
                f"the license key (CRDB_LICENSE or {LICENSE_FILE}) is not a CockroachDB license key: fix it, "
                "restart make dev and re-execute the run"
            )
        marker = self.data_dir / "license.applied"
        digest = hashlib.sha256(key.encode()).hexdigest()
        if marker.exists() and marker.read_text().split()[:1] == [digest]:
            return
        sql = f"SET CLUSTER SETTING enterprise.license = '{key}';\n"
        result = self._run([binary, "sql", *self.security_flags(), f"--host={self.node(1).sql_addr}"], stdin=sql)
        if result.returncode != 0:
            # The output, never the statement: it holds the key.
            raise ClusterControlError(
                f"applying the license failed (exit {result.returncode}): {(result.stdout + result.stderr).strip()[-400:]}"
                " Check the key (CRDB_LICENSE or .data/license), then re-execute the run"
            )
        atomic_write(marker, f"{digest} {time.time():.0f}\n")
        log.info("%s: license applied", self.describe())

    def _run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                args,
                check=False,
                capture_output=True,
                text=True,
                timeout=self.config.command_timeout_seconds,
                **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}),
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
            terminate(pid, timeout)
            self.pid_file(node).unlink(missing_ok=True)
            stopped.append(f"{node.name} (pid {pid})")
        return stopped

    # --- the node-loss drill (evolution_pipeline/drills/nodes.py) ----------------------------------------

    def stop_node(self, index: int, timeout: float = 60.0) -> str:
        """Take one node away for the drill: SIGTERM drains it like `cockroach node drain`, SIGKILL after
        `timeout`. Never node 1: it ran `cockroach init` and holds the nodelocal://1 backups."""
        if index == 1:
            raise ClusterControlError("refusing to stop node1: it holds the backups (nodelocal://1) and ran init")
        node = self.node(index)
        pid = self.node_pid(node)
        if not pid:
            return f"{node.name} was not running"
        terminate(pid, timeout)
        self.pid_file(node).unlink(missing_ok=True)
        return f"{node.name} (pid {pid}) terminated"

    def restart_node(self, index: int) -> str:
        """Start a node the drill took away; a running node is left alone, and the cluster never grows."""
        node = self.node(index)
        if index > int(self._read_state().get("desired_nodes", 0)):
            raise ClusterControlError(f"{node.name} is not part of {self.describe()}: restart_node never grows it")
        if pid := self.node_pid(node):
            return f"{node.name} already running (pid {pid})"
        return f"{node.name} started again (pid {self.start_node(node, self.binary())})"

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
        return httpc.trusting(self.certs_dir / "ca.crt")  # one context per CA file, not one per poll

    def node_health(self, node: LocalNode) -> tuple[bool, str]:
        try:
            verify = self._verify()
            r = httpc.get(self.health_url(node), verify=verify, timeout=3.0)
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
        atomic_write(target, json.dumps([entry] if nodes else [], indent=2) + "\n")
        ca = self.certs_dir / "ca.crt"
        if ca.exists():
            # certs/ca.crt is a bundle: every local cluster scraped by this Prometheus adds its CA once.
            bundle = self.prometheus_dir / "certs" / "ca.crt"
            pem = ca.read_text()
            existing = bundle.read_text() if bundle.exists() else ""
            if pem.strip() not in existing:
                atomic_write(
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

    def writer_url(self, password: str | None = None, user: str = "app_rw_01") -> str:
        return self.sql_url(1, user, "app", password)

    def reader_url(self, password: str | None = None, user: str = "app_ro_01") -> str:
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
