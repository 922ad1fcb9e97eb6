"""Both evolution files run end to end on both real backends: the evolve job, in a second interpreter with
EVOLUTION_PLAN, with the product's own cluster resource (EVOLUTION_CLUSTER_BACKEND=local: stand-in `cockroach`
processes; =operator: the Kubernetes API stand-in with kind's six zoned workers and the repository's
CrdbCluster manifest), the bench's real Prometheus, real sample app and SQL stand-in following what that backend
did (tests/pipeline/backend_worlds.py). Then the last phase again, which must change nothing.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from evolution_pipeline.evolution import load_evolution
from evolution_pipeline.evolution.model import REPO_ROOT, zone_of
from evolution_pipeline.resources.operator import CLUSTER_MANIFEST, REQUIRED_RBAC_RULES
from tests.doubles.k8s_scheduler import kind_workers
from tests.local.conftest import FAKE_COCKROACH, kill_all, node_pids_under
from tests.pipeline.backend_worlds import LocalWorld, OperatorWorld, RecordingKubeApi
from tests.pipeline.test_operator_control import kubeconfig

pytestmark = pytest.mark.slow

FILES = ("evolutions/demo.yaml", "evolutions/three-zones.yaml")
NAMESPACE, CLUSTER = "crdb", "cockroachdb"
# What the local backend may run during an evolution: no `node decommission`, no `node drain`, no stop.
LOCAL_COMMANDS = {"cert", "start", "init", "node status", "sql"}


def port_bases(count: int) -> dict[str, int]:
    """SQL, gRPC and HTTP port bases, each with `count` free ports, below the kernel's ephemeral range
    (/proc/sys/net/ipv4/ip_local_port_range, 32768 on): six nodes start one after another over seconds, and an
    ephemeral port picked with bind(0) may meanwhile become some client connection's local port. Below the
    local backend's default bases (26257 and up), which other tests may use as they are."""
    taken: set[int] = set()
    bases = {}
    for kind in ("sql", "listen", "http"):
        for _ in range(200):
            base = random.randrange(20000, 26000 - count)
            ports = set(range(base, base + count))
            if not ports & taken and all(_free(p) for p in ports):
                bases[kind] = base
                taken |= ports
                break
    assert len(bases) == 3, "no free port range below 26000"
    return bases


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def run_backend(plan: str, env: dict) -> dict:
    env = {**os.environ, **env, "EVOLUTION_PLAN": plan, "PYTHONPATH": str(REPO_ROOT), "TEST_CHECK_SETTLE": "15",
           "SCALE_POLL_SECONDS": "0.1", "SCALE_TIMEOUT_SECONDS": "60"}
    out = subprocess.run([sys.executable, "-m", "tests.pipeline.backend_run"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_ran_clean(result: dict, evolution, resource: str, scaled: list[bool]) -> None:
    """Every phase and every check passed (the blocking ones among them), at the file's node counts; the
    re-run of the last phase passed its checks without scaling."""
    assert result["cluster_resource"] == resource
    assert result["success"], result["failures"]
    assert [p["name"] for p in result["phases"]] == [p.name for p in evolution.phases]
    for phase, ran in zip(evolution.phases, result["phases"]):
        assert ran["success"] and ran["nodes"] == phase.nodes, ran
        assert ran["blocking"] and ran["checks"] and all(ran["checks"].values()), ran
    assert [p["scaled"] for p in result["phases"]] == scaled
    rerun = result["rerun"]
    assert rerun["success"] and rerun["scaled"] is False, rerun
    assert rerun["checks"] and all(rerun["checks"].values()), rerun
    # The re-run's preflight compared the running nodes with the file: node by node where the backend places
    # them (local), by the number of distinct zones where the scheduler does (operator).
    last = evolution.phases[-1]
    assert rerun["localities"] == (f"{last.nodes} node(s) at the file's localities" if resource.startswith("Local")
                                   else f"{last.nodes} node(s) in {len(set(last.localities))} distinct localities, "
                                   "as in the file"), rerun


def assert_voters_as_the_file_asks(crdb, phase, locality) -> None:
    """Every range holds the last phase's voters and non-voters, on distinct nodes; where the file claims a
    zone survives, no zone holds a majority of any range's voters."""
    targets = {(phase.expected_data_voters, phase.expected_data_non_voters),
               (phase.expected_system_voters, phase.expected_system_non_voters)}
    ranges = crdb.range_state()
    assert ranges
    for r in ranges:
        assert (len(r["voters"]), len(r["non_voters"])) in targets, r
        assert len(set(r["voters"] + r["non_voters"])) == len(r["voters"]) + len(r["non_voters"]), r
        if phase.survives.zones:
            per_zone = Counter(zone_of(locality(n)) for n in r["voters"])
            assert max(per_zone.values()) < len(r["voters"]) // 2 + 1, (r, per_zone)


@pytest.fixture(params=FILES, ids=lambda f: Path(f).stem)
def evolution(request):
    return load_evolution(REPO_ROOT / request.param, request.param)


def test_local_backend_runs_the_file_end_to_end(evolution, stand_in_env, crdbs, worlds, tmp_path):
    """The evolve job with the local backend starting stand-in `cockroach` processes with the file's
    --locality: every phase is judged over its 3 s check windows, plus a second interpreter's Dagster
    import and the re-run of the last phase: ~25-40 s per file."""
    last = evolution.phases[-1]
    ports = port_bases(last.nodes)
    cluster_dir, data_dir = tmp_path / "fake-cluster", tmp_path / "data"
    env = {**stand_in_env, "EVOLUTION_CLUSTER_BACKEND": "local", "COCKROACH_BIN": str(FAKE_COCKROACH),
           "FAKE_COCKROACH_CLUSTER_DIR": str(cluster_dir), "LOCAL_CRDB_DATA_DIR": str(data_dir),
           "LOCAL_CRDB_SQL_PORT_BASE": str(ports["sql"]), "LOCAL_CRDB_LISTEN_PORT_BASE": str(ports["listen"]),
           "LOCAL_CRDB_HTTP_PORT_BASE": str(ports["http"]), "CRDB_LICENSE": "",
           "CRDB_LICENSE_FILE": str(tmp_path / "no-license")}
    try:
        with LocalWorld(cluster_dir, worlds["live"], crdbs["live"]) as backend:
            result = run_backend(evolution.source, env)
            members = backend.members()
            locality = backend.locality_of
        assert_ran_clean(result, evolution, "LocalClusterResource", [True] * len(evolution.phases))
        # Node by node: node i listens on the i-th port and runs with the file's i-th locality.
        want = {f"127.0.0.1:{ports['listen'] + i}": loc for i, loc in enumerate(last.localities)}
        assert {addr: m["locality"] for addr, m in members.items()} == want
        assert all(m["live"] for m in members.values()), members
        assert_voters_as_the_file_asks(crdbs["live"], last, locality)
        argv = [json.loads(line)["argv"] for line in (cluster_dir / "argv.log").read_text().splitlines()]
        used = {" ".join(a[:2]) if a[0] == "node" else a[0] for a in argv}
        assert used <= LOCAL_COMMANDS, used
        # Each node started exactly once: no restart, and the re-run started nothing.
        stores = Counter(next(x for x in a if x.startswith("--store=")) for a in argv if a[0] == "start")
        assert sorted(stores) == sorted(f"--store={data_dir / f'node{i}'}" for i in range(1, last.nodes + 1))
        assert set(stores.values()) == {1}, stores
        assert len([a for a in argv if a[0] == "init"]) == 1
    finally:
        kill_all(node_pids_under(tmp_path))


def test_operator_backend_runs_the_file_end_to_end(evolution, stand_in_env, crdbs, worlds, tmp_path):
    """The evolve job with the operator backend patching the repository's CrdbCluster in the Kubernetes API
    stand-in, whose pods spread over kind's zoned workers: every phase is judged over its 3 s check windows,
    plus a second interpreter's Dagster import and the re-run of the last phase: ~25-40 s per file."""
    last = evolution.phases[-1]
    manifest = next(d for d in yaml.safe_load_all((REPO_ROOT / CLUSTER_MANIFEST).read_text())
                    if d and d.get("kind") == "CrdbCluster")
    applied = manifest["spec"]["regions"][0]["nodes"]  # applied by hand at this size (k8s/README.md)
    with RecordingKubeApi(rbac_rules=REQUIRED_RBAC_RULES, token="pipeline-token", workers=kind_workers(),
                          scheduler_seed=len(evolution.phases)) as api:
        api.add_cluster(NAMESPACE, CLUSTER, nodes=applied, spec=manifest["spec"])
        env = {**stand_in_env, "EVOLUTION_CLUSTER_BACKEND": "operator", "CRDB_NAMESPACE": NAMESPACE,
               "CRDB_CLUSTER_NAME": CLUSTER, "KUBE_CONTEXT": "stand-in",
               "KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", api.host, "pipeline-token"))}
        with OperatorWorld(api, NAMESPACE, CLUSTER, worlds["live"], crdbs["live"]) as backend:
            result = run_backend(evolution.source, env)
            pods = backend.pods()
            locality = backend.locality_of
    nodes = [applied] + [p.nodes for p in evolution.phases]
    assert_ran_clean(result, evolution, "CrdbOperatorResource", [b > a for a, b in itertools.pairwise(nodes)])
    # The zone spread is the file's: as many nodes per zone (which zone is which is the scheduler's choice),
    # each node on a worker of its own, every locality the kind workers' region.
    assert len(pods) == last.nodes and all(p["ready"] for p in pods), pods
    assert sorted(Counter(zone_of(p["locality"]) for p in pods).values()) == sorted(
        Counter(zone_of(loc) for loc in last.localities).values()), pods
    assert len({p["worker"] for p in pods}) == last.nodes, pods
    assert {p["locality"].split(",")[0] for p in pods} == {"region=us-east1"}
    assert_voters_as_the_file_asks(crdbs["live"], last, locality)
    # Only ever grown, one patch per growing phase: the re-run patched nothing.
    assert api.node_counts == sorted(api.node_counts) and api.node_counts[-1] == last.nodes, api.node_counts
    assert api.count("patch", "crdbclusters") == sum(b > a for a, b in itertools.pairwise(nodes))
