"""Run the evolve job of EVOLUTION_PLAN's file with the REAL cluster resource of EVOLUTION_CLUSTER_BACKEND (built
by the product's configuration from the environment, as the code location builds it), everything else the
stand-ins named by the TEST_* variables (tests/pipeline/stand_ins.py); then run the last phase again. Prints
what happened as JSON.

A separate interpreter because the code location reads its evolution file once, at import (see
evolution_run.py). python -m tests.pipeline.backend_run
"""

from __future__ import annotations

import json
import sys
import time

import dagster as dg


def _phase(result, phase) -> dict:
    ours = [e for e in result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey(phase.name)]
    entry = {"name": phase.name, "checks": {e.check_name: e.passed for e in ours},
             "blocking": sorted(e.check_name for e in ours if e.blocking)}
    if dg.AssetKey(phase.name) not in {e.asset_key for e in result.get_asset_materialization_events()}:
        return entry | {"success": False}  # the phase never finished: the run's failures say why
    state = result.output_for_node(phase.name)
    return entry | {"success": True, "nodes": state.nodes, "scaled": state.scaled,
                    "localities": state.preflight.get("localities")}


def main() -> int:
    from evolution_pipeline.configuration import cluster_resource
    from evolution_pipeline.definitions import build_definitions
    from evolution_pipeline.environments import LIVE
    from evolution_pipeline.phases import EVOLUTION, PHASES
    from tests.pipeline.stand_ins import stand_in_resources_from_env

    resources = stand_in_resources_from_env()
    resources[LIVE.resource_key("cluster")] = cluster = cluster_resource(LIVE)
    job = build_definitions(resources).resolve_job_def("evolve")
    out = {"evolution": EVOLUTION.name, "cluster_resource": type(cluster).__name__}
    with dg.DagsterInstance.ephemeral() as instance:  # in memory: the runs need no stored history
        started = time.monotonic()
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        out["evolve_seconds"] = round(time.monotonic() - started, 1)
        out["success"] = result.success
        out["phases"] = [_phase(result, p) for p in PHASES]
        out["failures"] = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
        if result.success:
            started = time.monotonic()
            again = job.execute_in_process(instance=instance, raise_on_error=False,
                                           asset_selection=[dg.AssetKey(PHASES[-1].name)])
            out["rerun_seconds"] = round(time.monotonic() - started, 1)
            out["rerun"] = _phase(again, PHASES[-1]) | {"success": again.success}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
