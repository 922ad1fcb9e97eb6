"""The IO manager every step hands its output through: the Dagster instance's own event log.

Why the instance: on Kubernetes (K8sRunLauncher) every run is its own pod with its own disk, and runs share
only the instance's database (run and event storage; PostgreSQL in the Dagster chart). The default
filesystem IO manager writes under the pod's DAGSTER_HOME, gone with the pod, so a phase launched on its own,
a re-execution from failure or an automatic run retry could not load what an earlier run handed on. Our
outputs are small facts (state_metadata.py), so they live in the one place every run reads and the UI shows,
with no new server (no object store) to deploy, secure or back up.

- handle_output records the value as output metadata (`context.add_output_metadata`): Dagster writes it on the
  step's HANDLED_OUTPUT event and, for an asset's output, on its ASSET_MATERIALIZATION (dagster-io/dagster
  python_modules/dagster/dagster/_core/execution/plan/execute_step.py, _store_output: consume_logged_metadata
  into manager_metadata, then DagsterEvent.handled_output(..., metadata=manager_metadata)).
- load_input reads it back: from the producing run's HANDLED_OUTPUT event when the upstream step ran in this
  run or a parent run (for a re-execution, upstream_output.run_id is the parent run that produced the output:
  _core/execution/context/system.py, _get_source_run_id / _get_source_run_id_from_logs), else from the
  asset's latest materialization (an asset not executed in this run gets an artificial upstream context with
  step_key "none" and no run id: _core/execution/plan/inputs.py, FromLoadableAsset.load_input_object).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from ..state_metadata import StateMetadataError, value_from_metadata, value_metadata


class RunStateError(RuntimeError):
    """A value to load was never handed on through the instance: the message says what to run."""


class InstanceStateIOManager(dg.ConfigurableIOManager):
    """Small outputs kept as metadata in the instance's event log, read back by any later run or pod."""

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        context.add_output_metadata(value_metadata(obj))

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        run_id = _run_id(upstream)
        if run_id is not None:
            metadata = _handled_output_metadata(context.instance, run_id, upstream.step_key, upstream.name)
            where = f"step {upstream.step_key!r} of run {run_id}"
        else:
            metadata, where = _latest_materialization_metadata(context.instance, context.asset_key)
        try:
            return value_from_metadata(metadata)
        except StateMetadataError as exc:
            raise RunStateError(f"{where} handed nothing on through the instance ({exc}): materialize it again "
                                "with this code location, then re-run this step") from None


def _run_id(upstream: dg.OutputContext | None) -> str | None:
    if upstream is None:
        return None
    try:
        return upstream.run_id if upstream.step_key != "none" else None
    except dg.DagsterInvariantViolationError:  # an artificial context for an asset outside this run
        return None


def _handled_output_metadata(instance, run_id: str, step_key: str, output_name: str) -> dict:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.HANDLED_OUTPUT).records
    for record in reversed(records):  # the last one wins, as a step retried within the run writes again
        event = record.event_log_entry.dagster_event
        if event.step_key == step_key and event.event_specific_data.output_name == output_name:
            return dict(event.event_specific_data.metadata)
    raise RunStateError(f"run {run_id} recorded no output {output_name!r} of step {step_key!r}: it never "
                        "finished that step, so re-execute the run from the start")


def _latest_materialization_metadata(instance, asset_key: dg.AssetKey) -> tuple[dict, str]:
    entry = instance.get_latest_materialization_event(asset_key)
    name = asset_key.to_user_string()
    if entry is None or entry.asset_materialization is None:
        raise RunStateError(f"{name} has never been materialized on this Dagster instance: materialize {name} "
                            "first")
    return dict(entry.asset_materialization.metadata), f"{name}'s latest materialization (run {entry.run_id})"
