""".github/workflows/kind.yml: valid for GitHub, and it really runs the kind path end to end."""

from __future__ import annotations

import re

import yaml

from evolution_pipeline.phases import REPO_ROOT
from tests.manifests.test_run_job import load_script
from tests.support.workflows import job_steps, load_workflow, run_commands, workflow_schema_errors

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "kind.yml"
JOB = "evolve-on-kind"


def test_the_workflow_is_valid_against_githubs_schema():
    assert workflow_schema_errors(WORKFLOW) == ""


def test_the_schema_check_can_fail(tmp_path):
    broken = load_workflow(WORKFLOW)
    del broken["jobs"][JOB]["runs-on"]
    path = tmp_path / "kind.yml"
    path.write_text(yaml.safe_dump(broken))
    assert "runs-on" in workflow_schema_errors(path)


def test_it_installs_on_kind_then_runs_evolve_and_checks_three_ready_nodes():
    script = run_commands(load_workflow(WORKFLOW), JOB)
    order = [
        r"fetch_tools\.py kind kubectl helm",
        r"pip install -e \.",
        r"make kind-install",
        r"port-forward svc/dagster-dagster-webserver 3001:80",
        r"run_job\.py --url http://127\.0\.0\.1:3001 --job evolve",
        r"jsonpath='\{\.spec\.regions\[0\]\.nodes\}'\)\" = 3",
        r"--for=condition=PodReady crdbnode -l crdb\.cockroachlabs\.com/cluster=cockroachdb",
    ]
    positions = []
    for pattern in order:
        match = re.search(pattern, script)
        assert match, f"the {JOB} job never runs {pattern}"
        positions.append(match.start())
    assert positions == sorted(positions), "steps out of order"
    # The launcher waits long enough for three phases and is not allowed to fail quietly.
    timeout = int(re.search(r"run_job\.py [^\n]*--timeout (\d+)", script).group(1))
    assert timeout >= 3600


def test_the_names_it_uses_are_the_ones_the_install_creates():
    kind_mk = (REPO_ROOT / "mk" / "kind.mk").read_text()
    assert "svc/dagster-dagster-webserver 3001:80" in kind_mk  # what `make kind-install` tells people too
    values = yaml.safe_load((REPO_ROOT / "k8s" / "pipeline" / "dagster-values.yaml").read_text())
    location = values["dagster-user-deployments"]["deployments"][0]["name"]
    assert load_script().LOCATION == location


def test_actions_are_pinned_and_the_job_is_bounded():
    workflow = load_workflow(WORKFLOW)
    for step in job_steps(workflow, JOB):
        if "uses" in step:
            assert re.search(r"@v\d+\.\d+\.\d+$", step["uses"]), f"{step['uses']} is not pinned to a release"
    assert workflow["jobs"][JOB]["timeout-minutes"] <= 180
    assert workflow["permissions"] == {"contents": "read"}
