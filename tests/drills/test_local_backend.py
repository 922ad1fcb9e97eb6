"""The local backend takes one node away and brings it back for the node-loss drill, with the stand-in
`cockroach` processes of tests/local (tests/doubles/fake_cockroach.py)."""

from __future__ import annotations

import pytest

from evolution_pipeline.drills import nodes as node_control
from evolution_pipeline.resources.cluster import ClusterControlError
from tests.local.conftest import local_env, wait_ready  # noqa: F401  (fixture)


def test_stop_then_restart_one_node(local_env):  # noqa: F811
    control = local_env.control()
    control.scale_to(3)
    wait_ready(control, 3)
    node_control.require_drill_support(control)
    pid = control.running_nodes()[3]

    assert node_control.stop_node(control, 3) == f"node3 (pid {pid}) terminated"
    assert set(control.running_nodes()) == {1, 2}
    assert not control.status().is_ready(3)
    assert control.desired_nodes() == 3  # taking a node away is no scale-down

    assert node_control.restart_node(control, 3).startswith("node3 started again")
    wait_ready(control, 3)
    assert node_control.restart_node(control, 3).startswith("node3 already running")
    assert len(local_env.invocations("start")) == 4 and len(local_env.invocations("init")) == 1


def test_node_1_is_never_stopped_and_restart_never_grows(local_env):  # noqa: F811
    control = local_env.control()
    control.scale_to(2)
    wait_ready(control, 2)
    with pytest.raises(ClusterControlError, match="refusing to stop node1"):
        control.stop_node(1)
    with pytest.raises(ClusterControlError, match="never grows"):
        control.restart_node(3)
    assert set(control.running_nodes()) == {1, 2}
