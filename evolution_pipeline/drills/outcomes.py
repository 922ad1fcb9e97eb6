"""What the checks of a run said, read back from the Dagster instance, for the rehearsal report.

A run re-executed from failure is one story told over several runs (the root, its re-executions): the report
reads its whole chain of parents, oldest first, and the latest evaluation of a check wins, as in the UI.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from ..latency import CHECK_NAME as LATENCY_CHECK
from .run_record import run_chain


@dataclass(frozen=True)
class LatencyOutcome:
    """One phase's latency gate as the report shows it: baseline and phase side by side, and the verdict."""

    phase: str
    passed: bool
    description: str
    summary: str  # the check's Markdown table
    figures: dict  # name -> number (milliseconds, requests, ratios), as the check recorded them


def check_evaluations(instance: dg.DagsterInstance, run_id: str, check_name: str) -> dict:
    """asset key -> the latest AssetCheckEvaluation of `check_name` in the run's chain."""
    out = {}
    for rid in run_chain(instance, run_id):
        records = instance.get_records_for_run(rid, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        for record in records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            if evaluation.check_name == check_name:
                out[evaluation.asset_key] = evaluation
    return out


def latency_outcomes(instance: dg.DagsterInstance, run_id: str, phase_keys: dict[str, dg.AssetKey]
                     ) -> list[LatencyOutcome]:
    """The latency gate of each phase that was judged in this run's chain, in phase order."""
    found = check_evaluations(instance, run_id, LATENCY_CHECK)
    outcomes = []
    for phase, key in phase_keys.items():
        if (e := found.get(key)) is None:
            continue
        meta = {k: getattr(v, "value", v) for k, v in e.metadata.items()}
        figures = {k: v for k, v in meta.items() if isinstance(v, (int, float)) and k.endswith(("_ms", "_ratio"))}
        summary = meta.get("summary") if isinstance(meta.get("summary"), str) else ""
        outcomes.append(LatencyOutcome(phase, e.passed, e.description or "", summary, figures))
    return outcomes
