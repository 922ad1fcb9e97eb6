"""The local backend inside the real pipeline definitions: selected by EVOLUTION_CLUSTER_BACKEND=local (what
`make dev` sets), a rehearsal of its own, and without a binary a phase fails at once with the one message."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from evolution_pipeline.resources.local import MISSING_BINARY_MESSAGE, LocalClusterResource


@pytest.fixture
def local_backend_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EVOLUTION_CLUSTER_BACKEND", "local")
    monkeypatch.delenv("COCKROACH_BIN", raising=False)
    monkeypatch.setenv(
        "PATH",
        os.pathsep.join(
            p for p in os.environ["PATH"].split(os.pathsep) if p and not (Path(p) / "cockroach").exists()
        ),
    )
    monkeypatch.setenv("LOCAL_CRDB_DATA_DIR", str(tmp_path / "local"))
    monkeypatch.setenv("CRDB_CLUSTER_LABEL", "local")
    monkeypatch.setenv("PROMETHEUS_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CRDB_ADMIN_URL", "postgresql://root@127.0.0.1:26257/defaultdb?sslmode=verify-full")
    monkeypatch.setenv(
        "REHEARSAL_CRDB_ADMIN_URL", "postgresql://root@127.0.0.1:26457/defaultdb?sslmode=verify-full"
    )
    return tmp_path


def materialize_phase0() -> dg.ExecuteInProcessResult:
    """phase0 through the real definitions, with the resources the environment selects."""
    from evolution_pipeline.assets import all_assets
    from evolution_pipeline.checks import all_checks
    from evolution_pipeline.configuration import resources_from_env

    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize(
            all_assets() + all_checks(),
            resources=resources_from_env(),
            instance=instance,
            selection=[dg.AssetKey("phase0_single_node")],
            raise_on_error=False,
        )


def test_local_backend_is_selected_with_a_separate_rehearsal(local_backend_env):
    from evolution_pipeline.configuration import resources_from_env

    resources = resources_from_env()
    live, rehearsal = resources["cluster"], resources["rehearsal_cluster"]
    assert isinstance(live, LocalClusterResource) and isinstance(rehearsal, LocalClusterResource)
    assert (live.environment, rehearsal.environment) == ("live", "rehearsal")
    live_cfg, rehearsal_cfg = live.config(), rehearsal.config()
    assert live_cfg.data_dir == local_backend_env / "local"
    assert rehearsal_cfg.data_dir != live_cfg.data_dir and rehearsal_cfg.live_data_dir == live_cfg.data_dir

    def ports(cfg) -> set[int]:
        return {
            base + i
            for base in (cfg.sql_port_base, cfg.listen_port_base, cfg.http_port_base)
            for i in range(3)
        }

    assert not ports(live_cfg) & ports(rehearsal_cfg), "the rehearsal cluster has ports of its own"


@pytest.mark.slow
def test_materializing_a_phase_without_binary_fails_at_once_with_the_message(local_backend_env):

    started = time.monotonic()
    result = materialize_phase0()
    elapsed = time.monotonic() - started
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures, "a step failed"
    first = failures[0]
    assert "preflight" in first.step_key, "it fails in the first op, before any backup or scale"
    assert MISSING_BINARY_MESSAGE in first.event_specific_data.error.message
    assert result.get_asset_materialization_events() == []
    assert elapsed < 60, f"fails at once, not after a timeout ({elapsed:.0f}s)"
    assert not (local_backend_env / "local" / "node1").exists()


@pytest.mark.slow
def test_the_scale_op_grows_the_local_cluster_and_the_nodes_outlive_the_run(
    local_backend_env, local_env, monkeypatch
):
    """phase0 through the real ops with the stand-in binary: preflight, backup (skipped, nothing yet) and
    scale drive the local backend until /health?ready=1 and `node status` agree. The stand-in speaks no
    SQL, so the run stops at the first SQL step; the node it started keeps running after the run."""
    from tests.local.conftest import FAKE_COCKROACH

    monkeypatch.setenv("COCKROACH_BIN", str(FAKE_COCKROACH))
    monkeypatch.setenv("LOCAL_CRDB_DATA_DIR", str(local_env.data_dir))
    monkeypatch.setenv("LOCAL_CRDB_SQL_PORT_BASE", str(local_env.ports["sql"]))
    monkeypatch.setenv("LOCAL_CRDB_LISTEN_PORT_BASE", str(local_env.ports["listen"]))
    monkeypatch.setenv("LOCAL_CRDB_HTTP_PORT_BASE", str(local_env.ports["http"]))
    monkeypatch.setenv("SCALE_POLL_SECONDS", "0.2")
    monkeypatch.setenv("SCALE_TIMEOUT_SECONDS", "30")
    result = materialize_phase0()
    succeeded = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS}
    assert any("scale" in key for key in succeeded), succeeded
    control = local_env.control()
    assert set(control.running_nodes()) == {1}, "the node outlives the run that started it"
    assert control.status().is_ready(1)
    assert len(local_env.invocations("init")) == 1


def test_checks_select_the_label_the_local_targets_carry_by_default(local_backend_env, monkeypatch):
    """Without CRDB_CLUSTER_LABEL (outside make dev), the checks must select what the local nodes'
    file_sd targets are labelled with, or every check would find no series."""
    from evolution_pipeline.configuration import resources_from_env

    monkeypatch.delenv("CRDB_CLUSTER_LABEL", raising=False)
    monkeypatch.delenv("REHEARSAL_CRDB_CLUSTER_LABEL", raising=False)
    resources = resources_from_env()
    for prefix in ("", "rehearsal_"):
        targets_label = resources[f"{prefix}cluster"].config().cluster_label
        assert resources[f"{prefix}prometheus"].cluster_label == targets_label
        assert resources[f"{prefix}grafana"].cluster_label == targets_label
    assert resources["prometheus"].cluster_label != resources["rehearsal_prometheus"].cluster_label
