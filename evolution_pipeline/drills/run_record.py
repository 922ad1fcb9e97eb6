"""What a rehearse run did, read back from the Dagster instance: the rehearsal report's only source.

The report must be written also on the night something failed, and Dagster skips every step downstream of a
failed step or a failed blocking check, so the report cannot take the phases and drills as inputs. It reads
the run instead (and the runs it re-executes, oldest first, the latest word winning as in the UI):

- what each asset handed on (its materialization's metadata, state_metadata.py): the phases' states, the
  drills' results;
- which steps failed and why (the Failure's description: what went wrong and what to do), leaving out a step
  a later re-execution ran successfully;
- which checks failed and what they said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ..state_metadata import StateMetadataError, value_from_metadata

REPORT_OF_TAG = "crdb-evolution/report-of"  # on a report-only run: the id of the rehearse run it reports
KINDS = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.STEP_FAILURE,
         dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.ASSET_CHECK_EVALUATION}


@dataclass(frozen=True)
class FailedCheck:
    asset: str
    check: str
    description: str


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    values: dict = field(default_factory=dict)  # asset key -> the value its materialization handed on
    failed_steps: dict = field(default_factory=dict)  # step key -> why it failed
    failed_checks: tuple[FailedCheck, ...] = ()

    def value(self, key: dg.AssetKey) -> Any:
        return self.values.get(key)


def run_chain(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The run and its parents (re-execution), oldest first."""
    chain, run = [], instance.get_run_by_id(run_id)
    while run is not None:
        chain.append(run.run_id)
        run = instance.get_run_by_id(run.parent_run_id) if run.parent_run_id else None
    return chain[::-1]


def step_key(key: dg.AssetKey) -> str:
    """The step of a single-op asset: its op is named after the key's path (rehearsal__node_loss_drill)."""
    return "__".join(key.path)


def reported_run_id(run: dg.DagsterRun) -> str:
    """The run a report describes: the tagged rehearse run for a report-only run, else its own run."""
    return run.tags.get(REPORT_OF_TAG) or run.run_id


def read_run(instance: dg.DagsterInstance, run_id: str) -> RunRecord:
    if instance.get_run_by_id(run_id) is None:
        raise LookupError(f"run {run_id} is not on this Dagster instance")
    values, failed, checks = {}, {}, {}
    for rid in run_chain(instance, run_id):
        for record in instance.get_records_for_run(rid, of_type=KINDS).records:
            event = record.event_log_entry.dagster_event
            if event is not None:
                _take(event, values, failed, checks)
    failed_checks = tuple(FailedCheck(k.to_user_string(), name, e.description or "")
                          for (k, name), e in checks.items() if not e.passed)
    return RunRecord(run_id, values, failed, failed_checks)


def _take(event: dg.DagsterEvent, values: dict, failed: dict, checks: dict) -> None:
    kind = event.event_type
    if kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
        m = event.event_specific_data.materialization
        try:
            values[m.asset_key] = value_from_metadata(m.metadata)
        except StateMetadataError:
            pass  # written by something else than this code location's IO manager: nothing handed on
    elif kind == dg.DagsterEventType.STEP_FAILURE:
        failed[event.step_key] = failure_message(event)
    elif kind == dg.DagsterEventType.STEP_SUCCESS:
        failed.pop(event.step_key, None)  # re-executed and done: no longer a reason
    elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
        e = event.event_specific_data
        checks[(e.asset_key, e.check_name)] = e


def failure_message(event: dg.DagsterEvent) -> str:
    """The Failure's own description (ops/common.permanent says what to do), else the error's first line."""
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    return (error.message.strip().splitlines() or [error.cls_name or "failed"])[0] if error else "failed"
