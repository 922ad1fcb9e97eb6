"""The local-cluster CLI (`python -m evolution_pipeline.resources.local`, run 5-7 times per `make dev` and by
make local-status / local-stop) never imports Dagster, whose import alone costs over a second of CPU; and the
CLI's Dagster-free settings path builds exactly the configuration the Dagster resource builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evolution_pipeline.phases import REPO_ROOT
from evolution_pipeline.resources.cluster_control import LIVE, REHEARSAL, ClusterControlError

# Runs the CLI in this interpreter the way `python -m` does, then reports which Dagster modules got imported.
RUN_CLI_THEN_REPORT = """
import json, runpy, sys
argv = json.loads(sys.argv[1])
import evolution_pipeline.resources.local, evolution_pipeline.resources.local.__main__
sys.argv = ["python -m evolution_pipeline.resources.local", *argv]
code = 0
try:
    runpy.run_module("evolution_pipeline.resources.local", run_name="__main__", alter_sys=True)
except SystemExit as exit_:
    code = exit_.code
dagster = sorted(m for m in sys.modules if m.split(".")[0].startswith("dagster"))
print(json.dumps({"code": code, "dagster": dagster}))
"""


def cli_env(tmp_path) -> dict:
    """The environment make dev gives the CLI, with every folder under tmp_path and no binary anywhere."""
    ours = ("REHEARSAL_", "LOCAL_CRDB_", "COCKROACH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return env | {
        "PATH": "/usr/bin:/bin",
        "LOCAL_CRDB_DATA_DIR": str(tmp_path / "local"),
        "REHEARSAL_LOCAL_CRDB_DATA_DIR": str(tmp_path / "rehearsal"),
        "CRDB_TOOLS_BIN_DIR": str(tmp_path / "bin"),
    }


def run_cli(tmp_path, *argv: str) -> tuple[str, dict]:
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CLI_THEN_REPORT, json.dumps(argv)],
        cwd=REPO_ROOT, env=cli_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    *output, report = proc.stdout.rstrip("\n").split("\n")
    return "\n".join(output), json.loads(report)


@pytest.mark.parametrize(
    "argv", [["missing-binary-message"], ["admin-urls"], ["status", "--environment", "rehearsal"]]
)
def test_the_cli_never_imports_dagster(tmp_path, argv):
    output, report = run_cli(tmp_path, *argv)
    assert report == {"code": 0, "dagster": []}, f"`{' '.join(argv)}` imported Dagster: {report}"
    assert output, "the command printed nothing"


def test_admin_urls_are_the_ones_the_dagster_resource_builds(tmp_path, monkeypatch):
    from evolution_pipeline.resources.local import LocalClusterControl, LocalClusterResource

    output, _ = run_cli(tmp_path, "admin-urls")
    for name, value in cli_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    for var in ("COCKROACH_BIN", "LOCAL_CRDB_PROMETHEUS_DIR"):
        monkeypatch.delenv(var, raising=False)
    live, rehearsal = (
        LocalClusterControl(LocalClusterResource.from_environment(env).config()).sql_url(
            1, "root", "defaultdb"
        )
        for env in (LIVE, REHEARSAL)
    )
    assert str(tmp_path / "local" / "certs") in live and str(tmp_path / "rehearsal" / "certs") in rehearsal
    assert output.splitlines() == [f"CRDB_ADMIN_URL='{live}'", f"REHEARSAL_CRDB_ADMIN_URL='{rehearsal}'"]


@pytest.mark.parametrize("environment", [LIVE, REHEARSAL])
@pytest.mark.parametrize("environ", [
    {},
    {"LOCAL_CRDB_DATA_DIR": "/srv/crdb", "LOCAL_CRDB_SQL_PORT_BASE": "30000", "LOCAL_CRDB_INSECURE": "yes",
     "REHEARSAL_LOCAL_CRDB_HTTP_PORT_BASE": "9999", "REHEARSAL_CRDB_CLUSTER_LABEL": "drill",
     "LOCAL_CRDB_PROMETHEUS_DIR": "prom", "COCKROACH_BIN": "/nonexistent/cockroach"},
])
def test_the_settings_function_and_the_resource_agree(environment, environ):
    """One place for fields -> LocalClusterConfig: the CLI's config_from_env and the resource's config()."""
    from evolution_pipeline.resources.local import LocalClusterResource, config_from_env

    overrides = {"zones": ["a", "b"], "region": "eu", "node_start_timeout_seconds": 5.0}
    resource = LocalClusterResource.from_environment(environment, environ, **overrides)
    assert config_from_env(environment, environ, **overrides) == resource.config()
    assert config_from_env(environment, environ) == LocalClusterResource.from_environment(
        environment, environ).config()


def test_the_resource_declares_the_settings_defaults():
    from evolution_pipeline.resources.local import LocalClusterResource, local_cluster_config
    from evolution_pipeline.resources.local.settings import FIELD_DEFAULTS

    resource = LocalClusterResource()
    assert {name: getattr(resource, name) for name in FIELD_DEFAULTS} == FIELD_DEFAULTS | {"zones": []}
    assert local_cluster_config() == resource.config()


def test_an_unknown_setting_is_refused_by_name():
    from evolution_pipeline.resources.local import local_cluster_config

    refused = r"unknown local cluster setting\(s\) sql_port: use .*sql_port_base"
    with pytest.raises(ClusterControlError, match=refused):
        local_cluster_config(sql_port=1)


def test_the_package_still_exports_the_resource_lazily():
    from evolution_pipeline.resources import local

    assert local.LocalClusterResource.__name__ == "LocalClusterResource"
    assert "LocalClusterResource" in dir(local) and set(local.__all__) <= set(dir(local))
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        local.NoSuchName  # noqa: B018
