"""A wrong evolution file stops everything with its one message: `plan` exits 2 with it, and the Dagster code
location fails to load with it (what the UI shows as the location's load error; `dagster definitions
validate` loads the location the way the webserver does)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest

from evolution_pipeline.evolution.model import REPO_ROOT
from tests.evolution.test_files import BROKEN, raw, write

# The four broken files issue 22 names, each with the message it must give.
NAMED = [b for b in BROKEN if b[0] in ("num_replicas 2 without num_voters", "two node failures on three nodes",
                                       "voter constraints no node satisfies", "a zone claim that does not hold")]


def broken_file(tmp_path, base, breaks):
    data = copy.deepcopy(raw(base))
    breaks(data)
    return write(tmp_path, data)


def run(args, plan_file, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "EVOLUTION_PLAN": str(plan_file)}
    return subprocess.run(args, check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("what, base, breaks, message", NAMED, ids=[b[0] for b in NAMED])
def test_plan_refuses_a_broken_file_with_its_message(tmp_path, what, base, breaks, message):
    path = broken_file(tmp_path, base, breaks)
    out = run([sys.executable, "-m", "evolution_pipeline", "plan", "--offline"], path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == ""
    assert out.stderr.startswith(f"python -m evolution_pipeline: evolution error: {path}: {message}"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_plan_takes_the_file_from_its_option_too(tmp_path):
    _what, base, breaks, message = NAMED[0]
    path = broken_file(tmp_path, base, breaks)
    out = run([sys.executable, "-m", "evolution_pipeline", "plan", "--offline", "--evolution", str(path)],
              REPO_ROOT / "evolutions" / "demo.yaml")
    assert out.returncode == 2 and message in out.stderr


@pytest.mark.parametrize("what, base, breaks, message", NAMED, ids=[b[0] for b in NAMED])
def test_the_code_location_fails_to_load_with_the_message(tmp_path, what, base, breaks, message):
    """`dagster definitions validate` imports the code location: ~3 s each."""
    path = broken_file(tmp_path, base, breaks)
    dagster = str(REPO_ROOT / ".venv" / "bin" / "dagster")
    out = run([dagster, "definitions", "validate", "-m", "evolution_pipeline.definitions"], path)
    assert out.returncode != 0
    assert f"EvolutionError: {path}: {message}" in out.stdout + out.stderr, out.stdout + out.stderr


# The shipped files load as a code location: tests/pipeline/test_definitions.py, once per backend and file.
