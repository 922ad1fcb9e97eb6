"""Process lifecycle of the local cluster: grow 0 -> 1 -> 2 -> 3, ports, join list, init once, readiness,
restart safety and refusals. Against the stand-in `cockroach` (tests/doubles/fake_cockroach.py)."""

from __future__ import annotations

import os
import socket

import pytest

from evolution_pipeline.resources.cluster import ClusterControlError, ScaleDownRefused
from tests.local.conftest import node_pids_under, wait_ready

pytestmark = pytest.mark.slow


def flag(argv: list[str], name: str) -> str | None:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def test_grows_one_node_at_a_time_with_own_ports_and_one_join_list(local_env):
    control = local_env.control()
    assert control.desired_nodes() == 0
    assert control.status().nodes == ()

    for nodes in (1, 2, 3):
        assert control.scale_to(nodes) is True
        status = wait_ready(control, nodes)
        assert status.ready_nodes == nodes and status.settled
        assert f"reports {nodes} live node(s)" in status.message
        assert control.desired_nodes() == nodes

    starts = local_env.invocations("start")
    assert len(starts) == 3, "one `cockroach start` per node, no duplicates"
    p = local_env.ports
    for i, argv in enumerate(starts):
        assert flag(argv, "sql-addr") == f"127.0.0.1:{p['sql'] + i}"
        assert flag(argv, "listen-addr") == f"127.0.0.1:{p['listen'] + i}"
        assert flag(argv, "http-addr") == f"127.0.0.1:{p['http'] + i}"
        assert flag(argv, "store") == str(local_env.data_dir.resolve() / f"node{i + 1}")
        assert flag(argv, "locality") == f"region=local,zone=local-{'abc'[i]}"
    joins = {flag(argv, "join") for argv in starts}
    assert joins == {",".join(f"127.0.0.1:{p['listen'] + i}" for i in range(3))}, (
        "identical --join on every node"
    )

    inits = local_env.invocations("init")
    assert len(inits) == 1 and flag(inits[0], "host") == f"127.0.0.1:{p['listen']}", (
        "init once, via node 1's RPC port"
    )
    assert local_env.fake_state()["inits"] == 1
    members = local_env.fake_state()["members"]
    assert sorted(m["id"] for m in members.values()) == [1, 2, 3]

    # Asking again for the same size changes nothing and starts nothing.
    assert control.scale_to(3) is False
    control.set_desired_nodes(3)
    assert len(local_env.invocations("start")) == 3
    assert len(local_env.invocations("init")) == 1


def test_a_new_control_finds_running_nodes_instead_of_starting_duplicates(local_env):
    first = local_env.control()
    first.scale_to(2)
    wait_ready(first, 2)
    pids = first.running_nodes()
    assert set(pids) == {1, 2}

    # As after a restart of Dagster: a fresh object, only the data folder and the processes remain.
    again = local_env.control()
    assert again.running_nodes() == pids
    assert again.desired_nodes() == 2
    again.set_desired_nodes(2)
    assert again.scale_to(3) is True
    wait_ready(again, 3)
    assert len(local_env.invocations("start")) == 3, "nodes 1 and 2 were found, only node 3 was started"
    assert {i: again.running_nodes()[i] for i in (1, 2)} == pids
    assert len(local_env.invocations("init")) == 1


def test_lost_pid_files_and_state_are_recovered_from_proc(local_env):
    control = local_env.control()
    control.scale_to(2)
    wait_ready(control, 2)
    pids = control.running_nodes()
    for f in (local_env.data_dir / "run").iterdir():
        f.unlink()
    (local_env.data_dir / "state.json").unlink()

    fresh = local_env.control()
    assert fresh.running_nodes() == pids, "found by their --store in /proc"
    assert fresh.desired_nodes() == 2, "running nodes count even without the state file"
    with pytest.raises(ScaleDownRefused):
        fresh.scale_to(1)


def test_stale_pid_file_of_a_dead_node_starts_it_again(local_env):
    control = local_env.control()
    control.scale_to(1)
    wait_ready(control, 1)
    pid = control.running_nodes()[1]
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    assert control.running_nodes() == {}
    status = control.status()
    assert not status.settled and not status.is_ready(1)
    assert "no process" in status.nodes[0].detail

    control.set_desired_nodes(1)  # the same count: restart what is missing, never re-init
    wait_ready(control, 1)
    assert len(local_env.invocations("start")) == 2
    assert len(local_env.invocations("init")) == 1


def test_scale_down_is_refused_and_nodes_keep_running(local_env):
    control = local_env.control()
    control.scale_to(2)
    wait_ready(control, 2)
    pids = control.running_nodes()
    with pytest.raises(ScaleDownRefused, match="refusing to scale down to 1"):
        control.scale_to(1)
    assert control.running_nodes() == pids
    assert control.desired_nodes() == 2


def test_more_nodes_than_the_phase_table_is_refused(local_env):
    control = local_env.control()
    with pytest.raises(ClusterControlError, match="room for 1..3"):
        control.set_desired_nodes(4)
    assert local_env.invocations("start") == []


def test_port_taken_by_another_process_fails_with_a_clear_message(local_env):
    control = local_env.control()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", local_env.ports["sql"]))
        squatter.listen()
        with pytest.raises(ClusterControlError) as err:
            control.scale_to(1)
    message = str(err.value)
    assert f"SQL port {local_env.ports['sql']}" in message
    assert "not a node of this cluster" in message and "LOCAL_CRDB_SQL_PORT_BASE" in message
    assert local_env.invocations("start") == [], "nothing started next to a foreign process"
    assert control.desired_nodes() == 0


def test_status_is_not_ready_until_init_and_health_agree(local_env):
    control = local_env.control()
    node = control.node(1)
    # Start node 1 by hand without `cockroach init`: its /health?ready=1 answers 503.
    control._prepare_data_dir()
    control.ensure_certs(control.binary())
    control.start_node(node, control.binary())
    status = control.status()
    assert status.desired_nodes == 1 and status.ready_nodes == 0 and not status.is_ready(1)
    assert "503" in status.nodes[0].detail
    control.initialize(control.binary())
    wait_ready(control, 1)


def test_node_processes_outlive_their_starter(local_env):
    control = local_env.control()
    control.scale_to(1)
    pid = control.running_nodes()[1]
    # Own session: a Ctrl-C or the end of the Dagster run worker's process group does not reach it.
    assert os.getsid(pid) == pid and os.getpgid(pid) != os.getpgid(0)
    assert pid in node_pids_under(local_env.data_dir)


def test_cli_status_and_stop_for_make_local_targets(local_env):
    """`make local-status` / `make local-stop` run this CLI with the environment make dev uses."""
    import subprocess
    import sys

    from evolution_pipeline.phases import REPO_ROOT

    control = local_env.control()
    control.scale_to(2)
    wait_ready(control, 2)
    env = {
        **os.environ,
        "COCKROACH_BIN": str(local_env.config().cockroach_bin),
        "LOCAL_CRDB_DATA_DIR": str(local_env.data_dir),
        "LOCAL_CRDB_SQL_PORT_BASE": str(local_env.ports["sql"]),
        "LOCAL_CRDB_LISTEN_PORT_BASE": str(local_env.ports["listen"]),
        "LOCAL_CRDB_HTTP_PORT_BASE": str(local_env.ports["http"]),
    }
    cli = [sys.executable, "-m", "evolution_pipeline.resources.local"]
    status = subprocess.run(
        cli + ["status"], check=False, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    assert "desired=2 ready=2" in status.stdout and "node2=ready" in status.stdout
    assert f"crdb-reader: 127.0.0.1:{local_env.ports['sql'] + 1}" in status.stdout

    stop = subprocess.run(
        cli + ["stop"], env=env, cwd=REPO_ROOT, check=False, capture_output=True, text=True, timeout=120
    )
    assert stop.returncode == 0 and "node1" in stop.stdout and "node2" in stop.stdout
    assert node_pids_under(local_env.data_dir) == []
    assert (local_env.data_dir / "node1").is_dir(), "stopping keeps the data"
    # Started again later, the same stores come back without a second init.
    control.set_desired_nodes(2)
    wait_ready(control, 2)
    assert len(local_env.invocations("init")) == 1


def test_an_init_that_never_happened_is_done_on_the_next_call(local_env):
    control = local_env.control()
    control._prepare_data_dir()
    control.ensure_certs(control.binary())
    control.start_node(control.node(1), control.binary())  # as if the worker died before `cockroach init`
    assert not control.status().is_ready(1)
    control.set_desired_nodes(1)
    wait_ready(control, 1)
    assert len(local_env.invocations("start")) == 1 and len(local_env.invocations("init")) == 1
