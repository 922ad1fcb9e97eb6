"""GitHub Actions workflows checked against GitHub's workflow schema, as check-jsonschema ships it.

check-jsonschema vendors SchemaStore's github-workflow schema (`--builtin-schema vendor.github-workflows`),
so the check needs no network. It runs as a subprocess of this interpreter: the CLI is the supported
interface, and its exit code (0 valid, 1 invalid) is what a pre-commit hook would see.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOW_SCHEMA = "vendor.github-workflows"


def workflow_schema_errors(path: Path | str) -> str:
    """'' when the workflow file is valid, else check-jsonschema's report (names the failing key)."""
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", WORKFLOW_SCHEMA, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode == 0:
        return ""
    return (proc.stdout + proc.stderr).strip() or f"check-jsonschema exited {proc.returncode}"


def load_workflow(path: Path | str) -> dict:
    """The workflow as a dict. YAML 1.1 reads the key `on` as True; put it back under 'on'."""
    doc = yaml.safe_load(Path(path).read_text())
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def job_steps(workflow: dict, job: str) -> list[dict]:
    """The steps of one job, failing clearly when the job is missing."""
    jobs = workflow.get("jobs") or {}
    assert job in jobs, f"workflow has no job {job!r} (jobs: {sorted(jobs)})"
    return jobs[job].get("steps") or []


def run_commands(workflow: dict, job: str) -> str:
    """Every `run:` script of one job, joined: what the job actually executes."""
    return "\n".join(step.get("run", "") for step in job_steps(workflow, job))
