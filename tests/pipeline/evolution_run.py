"""Run every phase of EVOLUTION_PLAN's file, in order, in process, against the stand-ins named by the TEST_*
variables (tests/pipeline/stand_ins.py), and print what happened as JSON.

A separate interpreter because the code location reads its evolution file once, at import: the bench's own
process runs the demo, this one the file under test. python -m tests.pipeline.evolution_run
"""

from __future__ import annotations

import json
import sys

import dagster as dg


def main() -> int:
    from evolution_pipeline.assets import all_assets
    from evolution_pipeline.checks import all_checks
    from evolution_pipeline.phases import EVOLUTION, PHASES
    from tests.pipeline.stand_ins import stand_in_resources_from_env

    resources = stand_in_resources_from_env()
    out = {"evolution": EVOLUTION.name, "phases": []}
    with dg.instance_for_test() as instance:
        for phase in PHASES:
            result = dg.materialize(all_assets() + all_checks(), resources=resources, instance=instance,
                                    selection=[dg.AssetKey(phase.name)], raise_on_error=False)
            entry = {"name": phase.name, "success": result.success,
                     "checks": {e.check_name: e.passed for e in result.get_asset_check_evaluations()}}
            if result.success:
                state = result.output_for_node(phase.name)
                entry |= {"nodes": state.nodes, "zone_statements": list(state.zone_statements),
                          "localities": state.preflight.get("localities")}
            else:
                entry["failures"] = [e.step_failure_data.error.message for e in result.all_events
                                     if e.is_step_failure]
            out["phases"].append(entry)
            if not result.success:
                break
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
