"""The plan: what each phase would do, read from the cluster through the real resources, read-only.

Against the stand-ins: the real CrdbOperatorResource talks to the stand-in Kubernetes API server and the real
CrdbSqlResource to the wire-level CockroachDB stand-in, at each point of the evolution (fresh, after phase 0,
a partly done phase 1). Offline and the CLI run `python -m evolution_pipeline` for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evolution_pipeline.phases import PHASES, REPO_ROOT, get_phase
from evolution_pipeline.plan import ALWAYS, CHANGE, DONE, NOT_READ, build_plan, render
from evolution_pipeline.resources.operator_resource import CrdbOperatorResource
from evolution_pipeline.resources.sql_resource import CrdbSqlResource
from evolution_pipeline.zones import zone_plan
from tests.doubles.crdb_sql import CrdbSqlStandIn
from tests.doubles.k8s_api import KubeApiDouble

PHASE0, PHASE1, PHASE2 = PHASES
SECRET = "hunter2-never-printed"


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in {"CRDB_ADMIN_URL", "EVOLUTION_CLUSTER_BACKEND"}}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "evolution_pipeline", *args], cwd=REPO_ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)


# --- without a cluster -----------------------------------------------------------------------------------


def test_without_a_cluster_the_plan_comes_from_the_table_and_exits_0():
    out = run_cli("plan", "phase1_two_nodes")
    assert out.returncode == 0, out.stderr
    assert "NOT READ: CRDB_ADMIN_URL is not set" in out.stdout
    assert ("kubectl -n crdb patch crdbcluster cockroachdb --type=json -p "
            """'[{"op": "replace", "path": "/spec/regions/0/nodes", "value": 2}]'""") in out.stdout
    assert ("ALTER RANGE default CONFIGURE ZONE USING num_replicas = 2, num_voters = 1, "
            "voter_constraints = '[+region=<node 1 region>,+zone=<node 1 zone>]';") in out.stdout
    assert f"[{NOT_READ}] nodes: scale from 1 to 2 node(s)" in out.stdout


def test_an_unreachable_cluster_is_said_and_the_plan_still_prints(tmp_path):
    # Nothing listens on port 9; the kubeconfig points nowhere either.
    config = kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")
    out = run_cli("plan", "phase2_three_nodes", "--format", "json",
                  CRDB_ADMIN_URL="postgresql://root@127.0.0.1:9/defaultdb?sslmode=disable&connect_timeout=2",
                  KUBECONFIG=str(config))
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["read_error"].startswith("could not read the cluster")
    assert {s["status"] for s in plan["phases"][0]["steps"]} <= {NOT_READ, ALWAYS}


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_every_format_names_every_phase_and_redacts_passwords(fmt):
    out = run_cli("plan", "--format", fmt, APP_WRITER_PASSWORD=SECRET, APP_READER_PASSWORD=SECRET)
    assert out.returncode == 0, out.stderr
    assert SECRET not in out.stdout
    for phase in PHASES:
        assert phase.name in out.stdout
    assert "WITH PASSWORD '<redacted: $APP_READER_PASSWORD>'" in out.stdout.replace('\\"', '"')
    if fmt == "json":
        assert [p["phase"] for p in json.loads(out.stdout)["phases"]] == [p.name for p in PHASES]
    if fmt == "markdown":
        assert "| Step | What | Status |" in out.stdout and "```sql" in out.stdout


def test_an_unknown_phase_is_refused_with_the_known_ones():
    out = run_cli("plan", "phase9")
    assert out.returncode == 2
    assert "unknown phase 'phase9'" in out.stderr and "phase1_two_nodes" in out.stderr


def test_the_local_backend_plans_the_processes_it_would_start():
    out = run_cli("plan", "phase2_three_nodes", EVOLUTION_CLUSTER_BACKEND="local")
    assert out.returncode == 0, out.stderr
    start = [line.strip() for line in out.stdout.splitlines() if " start " in line]
    assert len(start) == 1 and "/node3 --listen-addr=127.0.0.1:26359" in start[0]
    assert "--locality=region=local,zone=local-c" in start[0]


# --- against the stand-ins, at each point of the evolution ------------------------------------------------


def kubeconfig(path: Path, host: str, token: str = "t") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "stand-in",
        "clusters": [{"name": "stand-in", "cluster": {"server": host}}],
        "users": [{"name": "pipeline", "user": {"token": token}}],
        "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "pipeline"}}],
    }))
    return path


class Cluster:
    """One CrdbCluster in the stand-in API server and the CockroachDB stand-in behind it, kept in step."""

    def __init__(self, api: KubeApiDouble, crdb: CrdbSqlStandIn, tmp_path: Path):
        self.api, self.standin = api, crdb
        self.operator = CrdbOperatorResource(kubeconfig=str(kubeconfig(tmp_path / "kubeconfig", api.host)),
                                             poll_interval_seconds=0.02)
        self.sql = CrdbSqlResource(url=crdb.url)

    def plan(self, phase):
        return build_plan([phase], environment="live", cluster=self.operator, crdb=self.sql).phases[0]

    def apply(self, phase, *, users: bool = True) -> None:
        """What apply_sql does, through the same resource methods."""
        self.sql.ensure_database()
        locality = self.sql.first_node_locality() if phase.pins_voters else None
        for z in zone_plan(phase, locality):
            self.sql.set_zone(z.target, z.num_replicas, z.num_voters, z.voter_constraints)
        if users:
            for group in phase.groups:
                self.sql.ensure_group(group)
            for user in phase.users:
                self.sql.ensure_login_user(user, "pw")
            for path in phase.sql_paths():
                self.sql.run_script(path)
        self.standin.settle()


@pytest.fixture
def cluster(tmp_path):
    nodes = {"n": 1}
    with KubeApiDouble() as api, CrdbSqlStandIn(live_nodes=lambda: nodes["n"]) as crdb:
        api.add_cluster("crdb", "cockroachdb", 1)
        c = Cluster(api, crdb, tmp_path)
        c.nodes = nodes
        yield c


def statuses(plan) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for step in plan.steps:
        found.setdefault(step.kind, []).append(step.status)
    return found


def test_fresh_cluster_phase0_changes_zones_and_user_and_skips_the_backup(cluster):
    plan = cluster.plan(PHASE0)
    s = statuses(plan)
    assert s["nodes"] == [DONE]
    assert s["zone"] == [CHANGE] * 5  # a cluster started with `cockroach start` + init has 3 / 5 replicas
    # Groups app_fa and app_rw, then app_rw_01 (initial password in its CREATE USER) and app_rw_02 (none).
    assert s["user"] == [CHANGE] * 4 and s["backup"] == [DONE] and s["verify"] == [CHANGE]
    assert "skipped" in next(st.summary for st in plan.steps if st.kind == "backup")


def test_after_phase0_it_is_done_and_phase1_will_scale_with_the_real_patch(cluster):
    cluster.apply(PHASE0)
    done = statuses(cluster.plan(PHASE0))
    # Created once: a re-run never sets a password again (rotate_credentials owns them).
    assert done["zone"] == [DONE] * 5 and done["user"] == [DONE] * 4 and done["verify"] == [DONE]

    plan = cluster.plan(PHASE1)
    s = statuses(plan)
    assert s["nodes"] == [CHANGE] and s["zone"] == [CHANGE] * 5 and s["user"][0] == CHANGE
    assert s["backup"] == [ALWAYS]
    nodes = next(st for st in plan.steps if st.kind == "nodes")
    assert nodes.summary == "scale from 1 to 2 node(s)"
    assert '"value": 2' in nodes.commands[0]
    zone = next(st for st in plan.steps if st.kind == "zone")
    # Node 1's real locality, read from SHOW CLUSTER RANGES: never the placeholder.
    assert "voter_constraints = '[+region=local,+zone=local-a]'" in zone.commands[0]


def test_a_partly_done_phase1_marks_what_is_done(cluster):
    cluster.apply(PHASE0)
    cluster.operator.control().scale_to(2)  # the scale step ran ...
    cluster.nodes["n"] = 2
    cluster.apply(PHASE1, users=False)  # ... and the zones, but apply_sql failed before the user
    s = statuses(cluster.plan(PHASE1))
    # CockroachDB prints '[+region=local, +zone=local-a]' back: still the same constraints.
    assert s["nodes"] == [DONE] and s["zone"] == [DONE] * 5
    assert s["user"] == [CHANGE] * 3  # group app_ro, app_ro_01, app_ro_02
    assert s["verify"] == [DONE]  # 1 voter on node 1 + 1 non-voter on node 2 per range
    assert statuses(cluster.plan(PHASE2))["zone"] == [CHANGE] * 5


def test_the_plan_only_reads(cluster):
    cluster.apply(PHASE0)
    before = len(cluster.standin.statements)
    nodes_patched = cluster.api.count("patch", "crdbclusters")
    cluster.plan(PHASE1)
    cluster.plan(PHASE2)
    sent = [sql for _, _, sql in cluster.standin.statements[before:]]
    assert sent and all(sql.lstrip().upper().startswith(("SELECT", "SHOW")) for sql in sent), sent
    assert cluster.api.count("patch", "crdbclusters") == nodes_patched
    assert cluster.api.get("crdbclusters", "crdb", "cockroachdb")["spec"]["regions"][0]["nodes"] == 1


def test_a_grown_cluster_is_never_planned_down(cluster):
    cluster.operator.control().scale_to(3)
    nodes = next(st for st in cluster.plan(get_phase("phase1_two_nodes")).steps if st.kind == "nodes")
    assert nodes.status == CHANGE and "never scales down" in nodes.summary and not nodes.commands


def test_rendering_keeps_every_step():
    plan = build_plan(list(PHASES), environment="live", cluster=CrdbOperatorResource(),
                      crdb=CrdbSqlResource(url=""), unreadable="offline")
    text, md, js = render(plan, "text"), render(plan, "markdown"), json.loads(render(plan, "json"))
    steps = sum(len(p.steps) for p in plan.phases)
    assert text.count("\n  [") == steps
    assert md.count("\n| ") - len(PHASES) == steps  # rows minus each table's header row
    assert sum(len(p["steps"]) for p in js["phases"]) == steps


def test_the_plain_classes_plan_what_the_resources_plan(cluster):
    """The CLI reads through the resources' Dagster-free classes (settings.plan_resources): the same plan, read."""
    from evolution_pipeline.resources.operator import CrdbOperatorBackend
    from evolution_pipeline.resources.sql import CrdbSqlClient

    operator = CrdbOperatorBackend(kubeconfig=cluster.operator.kubeconfig, poll_interval_seconds=0.02)
    sql = CrdbSqlClient(url=cluster.sql.url)
    for apply in (None, PHASE0):
        if apply:
            cluster.apply(apply)
        by_resources = build_plan(list(PHASES), environment="live", cluster=cluster.operator, crdb=cluster.sql)
        assert by_resources.read_error is None
        assert build_plan(list(PHASES), environment="live", cluster=operator, crdb=sql) == by_resources
