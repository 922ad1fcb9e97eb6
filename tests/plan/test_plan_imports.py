"""`python -m evolution_pipeline plan` (and `docs`) never imports Dagster, whose import alone costs ~2 CPU-seconds
per call: the plan reads the cluster through the resources' Dagster-free classes (CrdbSqlClient in
resources/sql.py, CrdbOperatorBackend in resources/operator.py, LocalClusterBackend in resources/local/backend.py),
which evolution_pipeline/settings.py configures with exactly the fields configuration.py gives the run's Dagster
resources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest

from evolution_pipeline.environments import ENVIRONMENTS
from evolution_pipeline.phases import REPO_ROOT
from tests.doubles.k8s_api import KubeApiDouble

from .test_plan import kubeconfig

# Runs the CLI in this interpreter the way `python -m` does, then reports which Dagster modules got imported, and
# which client libraries (after a marker: JSON output ends without a newline).
REPORT = "\n--- report: "
RUN_CLI_THEN_REPORT = f"""
import json, runpy, sys
sys.argv = ["python -m evolution_pipeline", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("evolution_pipeline", run_name="__main__", alter_sys=True)
except SystemExit as exit_:
    code = exit_.code
dagster = sorted(m for m in sys.modules if m.split(".")[0].startswith("dagster"))
clients = sorted({{m.split(".")[0] for m in sys.modules}} & {{"psycopg", "kubernetes", "urllib3"}})
print({REPORT!r} + json.dumps({{"code": code, "dagster": dagster, "clients": clients}}))
"""

# Nothing listens on port 9: the read is tried, fails, and the plan says so.
UNREACHABLE_URL = "postgresql://root@127.0.0.1:9/defaultdb?sslmode=disable&connect_timeout=2"


def run_cli(argv: list[str], **env: str) -> tuple[str, dict]:
    ours = ("CRDB_", "REHEARSAL_", "LOCAL_CRDB_", "EVOLUTION_", "KUBE")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(ours)} | env
    proc = subprocess.run([sys.executable, "-c", RUN_CLI_THEN_REPORT, json.dumps(argv)], cwd=REPO_ROOT,
                          env=environ, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    output, report = proc.stdout.rsplit(REPORT, 1)
    return output, json.loads(report)


@pytest.mark.parametrize("backend", ["operator", "local"])
@pytest.mark.parametrize("argv", [
    ["plan", "--offline"],
    ["plan", "phase1_two_nodes"],
    ["plan", "--format", "json", "--environment", "rehearsal"],
])
def test_the_plan_never_imports_dagster(backend, argv):
    output, report = run_cli(argv, EVOLUTION_CLUSTER_BACKEND=backend)
    assert report["dagster"] == [], f"`{' '.join(argv)}` ({backend}) imported Dagster: {report}"
    # Nor, when it does not read the cluster, the client libraries (~0.3 CPU-s for psycopg alone).
    assert report == {"code": 0, "dagster": [], "clients": []}, report
    assert "phase1_two_nodes" in output


@pytest.mark.parametrize("backend", ["operator", "local"])
def test_reading_the_cluster_never_imports_dagster(backend, tmp_path):
    """With an admin URL the plan builds the backend's control, reads the node count (the stand-in API server; a
    local cluster's state file, with a stand-in binary) and connects, which fails here: still no Dagster."""
    binary = tmp_path / "cockroach"
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "state.json").write_text('{"desired_nodes": 1}')
    with KubeApiDouble() as api:
        api.add_cluster("crdb", "cockroachdb", 1)
        output, report = run_cli(["plan", "phase2_three_nodes"], EVOLUTION_CLUSTER_BACKEND=backend,
                                 CRDB_ADMIN_URL=UNREACHABLE_URL, COCKROACH_BIN=str(binary),
                                 KUBECONFIG=str(kubeconfig(tmp_path / "kubeconfig", api.host)),
                                 LOCAL_CRDB_DATA_DIR=str(tmp_path / "local"))
    assert (report["code"], report["dagster"]) == (0, []), f"reading the cluster ({backend}) imported Dagster: {report}"
    assert "psycopg" in report["clients"], report
    assert "NOT READ: could not read the cluster: SQL" in output and "cannot connect" in output, output[:800]


def test_a_bad_setting_and_the_docs_check_never_import_dagster():
    _, report = run_cli(["plan"], SCALE_POLL_SECONDS="nan")
    assert report == {"code": 2, "dagster": [], "clients": []}, report
    output, report = run_cli(["docs"])
    assert report == {"code": 0, "dagster": [], "clients": []}, report
    assert output.startswith("up to date"), output


# --- the plan's plain objects are the run's resources, field for field -------------------------------------

SETTINGS = {
    "CRDB_NAMESPACE": "crdb-x", "REHEARSAL_CRDB_NAMESPACE": "crdb-y", "KUBE_CONTEXT": "kind-x",
    "SCALE_TIMEOUT_SECONDS": "12", "REHEARSAL_SCALE_POLL_SECONDS": "0.5", "CRDB_BACKUP_URI": "s3://b/p?AUTH=implicit",
    "REPLICATION_TIMEOUT_SECONDS": "7", "LOCAL_CRDB_SQL_PORT_BASE": "30000", "REHEARSAL_LOCAL_CRDB_INSECURE": "true",
    "LOCAL_CRDB_DATA_DIR": "/srv/crdb", "COCKROACH_BIN": "/nonexistent/cockroach",
}


def plain(fields: dict) -> dict:
    """Field values as a dataclass holds them: a resource's list (LocalClusterResource.zones) is a tuple there."""
    return {name: tuple(value) if isinstance(value, list) else value for name, value in fields.items()}


@pytest.mark.parametrize("backend", ["operator", "local"])
@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda e: e.name)
@pytest.mark.parametrize("environ", [{}, SETTINGS], ids=["defaults", "set"])
def test_the_plan_reads_through_what_the_run_is_given(backend, env, environ, monkeypatch):
    """plan_resources' plain classes hold exactly the fields configuration.py gives the run's resources, and
    say offline what the resources say."""
    from evolution_pipeline.configuration import cluster_resource, crdb_resource
    from evolution_pipeline.settings import plan_resources

    for name in [*os.environ]:
        if name.startswith(("CRDB_", "REHEARSAL_", "LOCAL_CRDB_", "KUBE", "SCALE_", "REPLICATION_", "COCKROACH")):
            monkeypatch.delenv(name)
    url = "postgresql://root@127.0.0.1:26257/defaultdb"
    for name, value in (environ | {"EVOLUTION_CLUSTER_BACKEND": backend, "CRDB_ADMIN_URL": url,
                                   "REHEARSAL_CRDB_ADMIN_URL": url}).items():
        monkeypatch.setenv(name, value)
    cluster, crdb, unreadable = plan_resources(env)
    resource = cluster_resource(env)
    assert asdict(cluster) == plain(resource.model_dump())
    assert asdict(crdb) == crdb_resource(env, url=url).model_dump()
    assert unreadable is None
    assert cluster.describe_offline() == resource.describe_offline()
    for current, target in [(0, 1), (0, 3), (1, 2), (2, 3), (3, 3)]:
        assert cluster.scale_commands(current, target) == resource.scale_commands(current, target)


def test_the_plain_classes_default_like_the_resources():
    from evolution_pipeline.resources.local import LocalClusterResource
    from evolution_pipeline.resources.local.backend import LocalClusterBackend
    from evolution_pipeline.resources.operator import CrdbOperatorBackend
    from evolution_pipeline.resources.operator_resource import CrdbOperatorResource
    from evolution_pipeline.resources.sql import CrdbSqlClient
    from evolution_pipeline.resources.sql_resource import CrdbSqlResource

    assert asdict(CrdbOperatorBackend()) == CrdbOperatorResource().model_dump()
    assert asdict(LocalClusterBackend()) == plain(LocalClusterResource().model_dump())
    assert asdict(CrdbSqlClient(url="u")) == CrdbSqlResource(url="u").model_dump()
    with pytest.raises(TypeError, match="url"):
        CrdbSqlClient()  # required, as the resource's
