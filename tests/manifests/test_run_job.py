"""k8s/pipeline/run_job.py, the kind workflow's launcher, against a real Dagster webserver and daemon.

The workflow launches `evolve` through the chart's webserver; here `dagster dev` serves a tiny code location
under the same location name, so the launcher's GraphQL calls, its polling and its exit codes are real.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from evolution_pipeline.phases import REPO_ROOT
from tests.support.dagster_dev import FAST_QUEUE, start_dagster_dev

SCRIPT = REPO_ROOT / "k8s" / "pipeline" / "run_job.py"


def load_script():
    spec = importlib.util.spec_from_file_location("run_job", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    location = load_script().LOCATION
    # The queue's pass every second (FAST_QUEUE): the launcher polls the run whatever the daemon's pace.
    dev = start_dagster_dev(tmp_path_factory.mktemp("run-job"), "tests.manifests.run_job_location", location,
                            instance_extra=FAST_QUEUE)
    try:
        dev.wait_until_loaded(location)
        yield dev
    finally:
        # What is left after 2 s is killed: a graceful shutdown takes dagster dev ~10 s, and it is the e2e
        # test's concern (tests/e2e), not the launcher's.
        dev.stop(timeout=2)


def run(webserver, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--url", webserver.url, "--poll", "0.5", "--timeout", "240", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_job_that_succeeds_exits_0(webserver):
    """A real run launched and polled through the webserver (~5-10 s: the daemon's dequeue, the run's process)."""
    done = run(webserver, "--job", "evolve")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "launched evolve: run " in done.stdout and ": SUCCESS" in done.stdout


@pytest.mark.slow
def test_a_failed_run_exits_1_and_says_where_its_logs_are(webserver):
    """A real run that fails, launched and polled through the webserver (~5-10 s, as the succeeding one)."""
    done = run(webserver, "--job", "broken")
    assert done.returncode == 1, done.stdout + done.stderr
    assert ": FAILURE" in done.stdout
    assert "kubectl -n crdb logs job/dagster-run-" in done.stderr


@pytest.mark.slow
def test_an_unknown_job_is_not_launched(webserver):
    done = run(webserver, "--job", "no_such_job")
    assert done.returncode == 2 and "could not launch no_such_job" in done.stderr
