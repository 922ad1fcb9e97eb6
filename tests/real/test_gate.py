"""The real-cluster suite's gate, in the everyday suite (no `real` marker, no CockroachDB needed): `make test`
deselects the suite, `make test-real` collects it, fails with one line without a binary, and the GitHub
workflow that runs it is valid against GitHub's workflow schema and runs what it should."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.workflows import load_workflow, run_commands, workflow_schema_errors

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "real-cluster.yml"
SUITE = "tests/real/test_evolution.py"
MISSING = "make test-real needs the official cockroach binary."


def _pytest(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           *args, SUITE], check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    return proc.stdout + proc.stderr


def test_the_default_run_deselects_the_real_suite_and_make_test_real_collects_it():
    """Three real pytest collections in subprocesses (each imports the suite's conftests), side by side: ~8-15 s."""
    with ThreadPoolExecutor(3) as pool:  # each mostly waits on its imports: one after another took ~25 s
        default, not_slow, selected = pool.map(lambda args: _pytest(*args), [(), ("-m", "not slow"), ("-m", "real")])
    assert "no tests collected" in default and "deselected" in default, default
    # A -m of one's own replaces addopts' `-m "not real"`: the suite's conftest still keeps it out.
    assert "no tests collected" in not_slow, not_slow
    for name in ("test_every_phase_step_and_blocking_check_passes", "test_voters_and_non_voters_per_range",
                 "test_app_errors_stay_within_the_budget", "test_the_last_backup_is_verified_and_restores"):
        assert name in selected, selected
    assert re.search(r"\b\d+ tests? collected", selected), selected


def _without_cockroach(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"COCKROACH_BIN", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTEST_ADDOPTS"}}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if p and not (Path(p) / "cockroach").exists())
    # Where scripts/fetch_tools.py would have put one (resources/local/binary.py tools_bin_dir): empty here.
    env["CRDB_TOOLS_BIN_DIR"] = str(tmp_path / "no-tools")
    return env


def test_make_test_real_without_a_binary_fails_with_one_line(tmp_path):
    proc = subprocess.run(["make", "--no-print-directory", "test-real"], check=False, cwd=REPO, env=_without_cockroach(tmp_path),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    ours = [line for line in proc.stderr.splitlines() if MISSING in line]
    assert len(ours) == 1, f"one line saying the binary is missing, got:\n{proc.stderr}"
    assert "COCKROACH_BIN" in ours[0] and "fetch_tools" in ours[0], "the line says how to get the binary"
    # The advice fits the test target, not the pipeline's (stop make dev, re-execute from the Dagster UI).
    assert "make dev" not in ours[0] and "Dagster UI" not in ours[0], ours[0]
    assert ours[0].endswith("Then run make test-real again."), ours[0]
    assert "test session starts" not in proc.stdout, "pytest must not run (and skip) without a binary"


def test_the_workflow_is_valid_against_githubs_workflow_schema():
    assert workflow_schema_errors(WORKFLOW) == ""


def test_the_workflow_fetches_the_pinned_binary_and_runs_make_test_real():
    workflow = load_workflow(WORKFLOW)
    assert {"push", "pull_request", "workflow_dispatch", "schedule"} <= set(workflow["on"])
    job = workflow["jobs"]["conformance"]
    assert job["runs-on"] == "ubuntu-latest"
    assert 0 < job["timeout-minutes"] <= 120
    for step in job["steps"]:
        if "uses" in step:  # pinned to a full release, never a moving branch or major tag
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+\.\d+\.\d+", step["uses"]), step["uses"]
    # versions.toml is the one pin: the workflow names no CockroachDB version of its own.
    assert not re.search(r"cockroach\S*[-:@ ]v?\d+\.\d+", WORKFLOW.read_text()), "a second version pin"
    commands = run_commands(workflow, "conformance")
    fetch = commands.index("scripts/fetch_tools.py cockroach prometheus")
    assert fetch < commands.index("make test-real"), "the binary is fetched (checksum verified) before the suite"
