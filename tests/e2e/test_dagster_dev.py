"""End to end through `dagster dev`: the webserver and daemon with the project's dagster.yaml (pools, run
monitoring, tag concurrency, queued runs) load the real definitions wired to the stand-in world; the
`evolve` job is launched and read back through the GraphQL API only, as the UI does.
"""

from __future__ import annotations

import time

import pytest

from evolution_pipeline.checks import CHECKS
from evolution_pipeline.environments import ENVIRONMENT_TAG
from evolution_pipeline.latency import CHECK_NAME as LATENCY_CHECK
from evolution_pipeline.ops import STEPS
from evolution_pipeline.phases import PHASES
from tests.doubles.pipeline_world import read_world, world
from tests.support.dagster_dev import FAST_QUEUE, start_dagster_dev

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LOCATION = "crdb_stand_in"
REPOSITORY = "__repository__"  # the repository name Dagster gives a module-level Definitions object
PHASE_NAMES = [p.name for p in PHASES]
CHECK_NAMES = sorted([c.name for c in CHECKS] + [LATENCY_CHECK])  # every blocking check on a phase

DEFINITIONS_QUERY = """query Defs($repo: RepositorySelector!, $group: AssetGroupSelector!) {
  repositoryOrError(repositorySelector: $repo) { __typename ... on Repository { jobs { name } } }
  schedulesOrError(repositorySelector: $repo) { __typename
    ... on Schedules { results { name cronSchedule pipelineName scheduleState { status } } } }
  assetNodes(group: $group) { assetKey { path } dependencyKeys { path } jobNames
    assetChecksOrError { __typename ... on AssetChecks { checks { name blocking } } } } }"""

MATERIALIZATIONS_QUERY = """query Mats($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) {
  assetKey { path } assetMaterializations(limit: 5) { runId stepKey
    metadataEntries { label ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text }
                      ... on FloatMetadataEntry { floatValue } } } } }"""

CHECK_EXECUTION_FIELDS = """runId status evaluation { success checkName
  metadataEntries { label ... on FloatMetadataEntry { floatValue } ... on TextMetadataEntry { text } } }"""


def check_executions_query() -> str:
    """One aliased assetCheckExecutions field per (phase, check)."""
    fields = [
        f'{phase}__{check}: assetCheckExecutions(assetKey: {{path: ["{phase}"]}}, '
        f'checkName: "{check}", limit: 5) {{ {CHECK_EXECUTION_FIELDS} }}'
        for phase in PHASE_NAMES
        for check in CHECK_NAMES
    ]
    return "{ " + "\n".join(fields) + " }"


def entries(metadata: list[dict]) -> dict:
    return {m["label"]: m.get("intValue", m.get("floatValue", m.get("text"))) for m in metadata}


@pytest.fixture
def dagster_dev(tmp_path, stand_in_env):
    dev = start_dagster_dev(tmp_path, "tests.e2e.stand_in_location", LOCATION, instance_extra=FAST_QUEUE)
    try:
        yield dev
    finally:
        # The detector must see what it later proves gone: dagster dev, webserver, daemon, code server.
        running = dev.processes()
        survivors = dev.stop(timeout=30)
        left = dev.processes()
        # SIGTERM to the process group must take down webserver, daemon, code server and run workers.
        assert not survivors, f"processes ignored SIGTERM (killed now): {survivors}"
        assert not left, f"processes left after stopping dagster dev: {left}"
        assert len(running) >= 4, running


def assert_definitions_visible(dev) -> None:
    repo = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
    data = dev.graphql(DEFINITIONS_QUERY, {"repo": repo, "group": {**repo, "groupName": "evolution"}})
    jobs = {j["name"] for j in data["repositoryOrError"]["jobs"]}
    assert {"evolve", "rehearse"} <= jobs
    schedules = {s["name"]: s for s in data["schedulesOrError"]["results"]}
    nightly = schedules["nightly_rehearsal"]
    assert (nightly["cronSchedule"], nightly["pipelineName"]) == ("0 2 * * *", "rehearse")
    assert nightly["scheduleState"]["status"] == "RUNNING"

    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert sorted(nodes) == sorted(PHASE_NAMES)
    previous = None
    for name in PHASE_NAMES:  # lineage: each phase depends on exactly the one before it
        node = nodes[name]
        assert ["/".join(k["path"]) for k in node["dependencyKeys"]] == ([previous] if previous else [])
        assert "evolve" in node["jobNames"]
        checks = node["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks"
        assert sorted(c["name"] for c in checks["checks"]) == CHECK_NAMES
        assert all(c["blocking"] for c in checks["checks"])
        previous = name


def assert_materializations(dev, run_id: str) -> None:
    keys = [{"path": [name]} for name in PHASE_NAMES]
    nodes = {
        n["assetKey"]["path"][0]: n for n in dev.graphql(MATERIALIZATIONS_QUERY, {"keys": keys})["assetNodes"]
    }
    for phase in PHASES:
        mats = [m for m in nodes[phase.name]["assetMaterializations"] if m["runId"] == run_id]
        assert len(mats) == 1, f"{phase.name}: {nodes[phase.name]['assetMaterializations']}"
        meta = entries(mats[0]["metadataEntries"])
        assert meta["nodes"] == phase.nodes
        assert meta["data_zone"] == phase.data.describe()
        assert (meta["expected_data_voters"], meta["expected_data_non_voters"]) == (
            phase.expected_data_voters, phase.expected_data_non_voters)
        assert (meta["expected_system_voters"], meta["expected_system_non_voters"]) == (
            phase.expected_system_voters, phase.expected_system_non_voters)
        assert meta["failures_tolerated"] == phase.failures_tolerated
        assert meta["backup_status"] == ("skipped" if phase is PHASES[0] else "taken")


def assert_checks_passed(dev, run_id: str) -> None:
    data = dev.graphql(check_executions_query())
    for phase in PHASES:
        for check in CHECK_NAMES:
            runs = [e for e in data[f"{phase.name}__{check}"] if e["runId"] == run_id]
            assert len(runs) == 1, (phase.name, check, data[f"{phase.name}__{check}"])
            execution = runs[0]
            assert execution["status"] == "SUCCEEDED", execution
            assert execution["evaluation"]["success"] is True
            meta = entries(execution["evaluation"]["metadataEntries"])
            assert 'cluster="crdb-test-live"' in meta["query"]
            if check == "live_nodes_match_phase":
                assert meta["value"] == phase.nodes


def assert_one_check_runs_alone(dev, phase: str, check: str, first: str) -> None:
    """What the UI's "Execute" on one check launches: a run selecting that check and no asset. Only that check
    is evaluated (the checks step can subset), over the phase's own window (the first run's metadata)."""
    selection = {"assetSelection": [], "assetCheckSelection": [{"assetKey": {"path": [phase]}, "name": check}]}
    run_id = dev.launch(LOCATION, REPOSITORY, "evolve", selection=selection)
    run = dev.wait_for_run(run_id, timeout=240)
    assert run["status"] == "SUCCESS", dev.errors(run_id) or dev.log_tail()
    assert [s["stepKey"] for s in run["stepStats"]] == [f"{phase}_checks"]
    data = dev.graphql(check_executions_query())
    for name in CHECK_NAMES:
        executions = {e["runId"]: e for e in data[f"{phase}__{name}"]}
        assert (run_id in executions) == (name == check), (name, list(executions))
    alone, before = executions_of(data, phase, check, run_id), executions_of(data, phase, check, first)
    assert alone["evaluation"]["success"] is True
    for key in ("query", "value"):
        assert entries(alone["evaluation"]["metadataEntries"])[key] == entries(
            before["evaluation"]["metadataEntries"])[key], key


def executions_of(data: dict, phase: str, check: str, run_id: str) -> dict:
    [execution] = [e for e in data[f"{phase}__{check}"] if e["runId"] == run_id]
    return execution


def assert_second_evolution_waits(dev, first: str) -> None:
    """dagster.yaml allows one run per crdb-evolution/environment value: a second evolve stays queued while
    the first one runs, and a queued run can be cancelled without ever starting."""
    second = dev.launch(LOCATION, REPOSITORY, "evolve")
    deadline = time.monotonic() + 120
    # Until the first run's process is up (STARTED): under a loaded machine (4 test workers on 2 cores) a run
    # can stay STARTING for longer than the dequeue passes below, and the point is a run that is executing.
    while dev.run(first)["status"] != "STARTED":
        assert time.monotonic() < deadline, f"first run never started: {dev.run(first)['status']}"
        time.sleep(0.5)
    time.sleep(4)  # several dequeue passes of the daemon's run queue (one a second: FAST_QUEUE)
    assert dev.run(first)["status"] == "STARTED", "the first run finished too soon to observe the queue"
    assert dev.run(second)["status"] == "QUEUED"
    dev.terminate(second)
    assert dev.wait_for_run(second, timeout=60)["status"] == "CANCELED"
    assert not any(e["eventType"] == "RUN_START" for e in dev.events(second))


def test_evolve_through_dagster_dev(dagster_dev, worlds):
    """A real `dagster dev` (webserver, daemon, code server) launching evolve through its queue: ~40-70 s, most of it
    Dagster's own start-up and the daemon's dequeue passes, which are what this test is about."""
    entry = dagster_dev.wait_until_loaded(LOCATION, timeout=240)
    assert [r["name"] for r in entry["locationOrLoadError"]["repositories"]] == [REPOSITORY]
    assert_definitions_visible(dagster_dev)

    # Nodes take ~1 s to become ready in each phase (20 polls of 50 ms): with each phase's 3 s check windows
    # the run executes for 12 s or more, three times the queue check's 4 s below, whatever the executor's speed.
    with world(worlds["live"]) as s:
        s["ready_after_polls"] = 20
    run_id = dagster_dev.launch(LOCATION, REPOSITORY, "evolve")
    assert_second_evolution_waits(dagster_dev, run_id)
    # The QueuedRunCoordinator hands the run to the daemon, which launches it once the pool allows.
    run = dagster_dev.wait_for_run(run_id, timeout=360)
    assert run["status"] == "SUCCESS", dagster_dev.errors(run_id) or dagster_dev.log_tail()
    assert {t["key"]: t["value"] for t in run["tags"]}[ENVIRONMENT_TAG] == "live"
    steps = {s["stepKey"]: s["status"] for s in run["stepStats"]}
    # Five ops + one step evaluating the phase's checks (all of CHECK_NAMES, each reported: below).
    expected = [f"{p}.{op}" for p in PHASE_NAMES for op in STEPS] + [f"{p}_checks" for p in PHASE_NAMES]
    assert sorted(steps) == sorted(expected), steps
    assert set(steps.values()) == {"SUCCESS"}

    assert_materializations(dagster_dev, run_id)
    assert_checks_passed(dagster_dev, run_id)
    assert_one_check_runs_alone(dagster_dev, PHASE_NAMES[0], "live_nodes_match_phase", run_id)

    final = read_world(worlds["live"])
    assert final["desired"] == final["ready"] == PHASES[-1].nodes
    assert final["calls"]["set_desired_nodes"] == len(PHASES)
    assert read_world(worlds["rehearsal"])["desired"] == 0  # the rehearsal environment was not touched
