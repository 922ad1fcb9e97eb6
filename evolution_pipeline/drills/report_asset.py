"""The rehearsal report as an asset: written from what the rehearse run did, read from the Dagster instance.

Why not from inputs: Dagster skips every step downstream of a failed step or failed blocking check, so a
report fed by the phases and drills would be missing exactly on the night with something to tell. The asset
depends on them only for order (deps: last in `rehearse`) and reads the run (run_record.py):

- in `rehearse` (everything before it passed, or it would have been skipped), the run it is part of;
- in `rehearsal_report_job`, launched by the sensor `rehearsal_report_after_failure` for a rehearse run that
  failed before its report, the run named by the tag crdb-evolution/report-of.

Either way the same record gives the same report, and its blocking check `rehearsal_verdict` fails the run
on FAIL, which the failure sensor reports with a link to the report.
"""

from datetime import timedelta

import dagster as dg

from ..environments import MAX_RUN_SECONDS, OWNERS, REHEARSAL
from ..latency import CHECK_NAME
from ..ops.common import permanent
from ..phases import PHASES
from ..state import PhaseState
from .backup_restore import DRILL_NAME as RESTORE
from .node_loss import DRILL_NAME as NODE_LOSS
from .outcomes import latency_outcomes
from .report import (
    REPORT_NAME,
    DrillFigures,
    build_report,
    metadata,
    node_loss_figures,
    restore_figures,
    zone_loss_figures,
)
from .run_record import RunRecord, read_run, reported_run_id, step_key
from .zone_loss import DRILL_NAME as ZONE_LOSS

ENV = REHEARSAL
# Nightly: a report older than a night plus the longest a rehearse run may take means the rehearsal stopped
# running (the schedule off, the daemon down, runs stuck in the queue) and the UI shows the report overdue.
# A warning an hour past a night. Dagster reports UNKNOWN, not overdue, until the first report exists
# (dagster/_core/definitions/freshness_evaluator.py: no materialization -> FreshnessState.UNKNOWN).
FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=1, seconds=MAX_RUN_SECONDS), warn_window=timedelta(days=1, hours=1))
NOT_RUN = "did not run: an earlier step or blocking check failed"
DRILLS = ((NODE_LOSS, node_loss_figures), (RESTORE, restore_figures))
ZONE_DRILL = (ZONE_LOSS, zone_loss_figures)  # only when the last phase claims a zone (drills/__init__.py)


def planned_drills() -> tuple:
    from . import zone_drill_planned  # the package decides which drills the rehearsal runs

    return (*DRILLS, ZONE_DRILL) if zone_drill_planned() else DRILLS


def phase_states(record: RunRecord) -> list[PhaseState]:
    """The phases the run completed, in order (a phase whose asset never materialized is not in the table)."""
    states = [record.value(ENV.asset_key(p)) for p in PHASES]
    return [s for s in states if isinstance(s, PhaseState)]


def drill_figures(record: RunRecord) -> list[DrillFigures]:
    """Each drill's figures, or why it has none: its own error when its step failed (it could not start, it
    could not bring the node back), else that it never ran."""
    out = []
    for name, figures in planned_drills():
        key = ENV.asset_key(name)
        if (value := record.value(key)) is not None:
            out.append(figures(value))
        elif error := record.failed_steps.get(step_key(key)):
            out.append(DrillFigures(name, False, f"failed: {error}", {}))
        else:
            out.append(DrillFigures(name, False, NOT_RUN, {}))
    return out


def run_reasons(record: RunRecord, latency_check: str) -> list[str]:
    """What the run itself says went wrong, beyond the figures: phases not reached, failed steps (the drills'
    own are in their rows), failed checks (the latency gate has its own section)."""
    drills = {step_key(ENV.asset_key(name)) for name, _ in planned_drills()}
    reasons = [f"{p.name}: not reached" for p in PHASES if not isinstance(record.value(ENV.asset_key(p)),
                                                                            PhaseState)]
    reasons += [f"step {k} failed: {why}" for k, why in record.failed_steps.items() if k not in drills]
    reasons += [f"{c.asset} {c.check}: {c.description}" for c in record.failed_checks
                if c.check != latency_check and not c.asset.endswith(REPORT_NAME)]
    return reasons


def build_report_asset() -> dg.AssetsDefinition:
    prom_key = ENV.resource_key("prometheus")

    @dg.asset(
        key=ENV.asset_key(REPORT_NAME),
        deps=[ENV.asset_key(p) for p in PHASES] + [ENV.asset_key(name) for name, _ in planned_drills()],
        group_name=ENV.group,
        required_resource_keys={prom_key},
        tags=ENV.evolution_tags,
        kinds={"prometheus"},  # it reads Prometheus and the instance, never the cluster
        owners=list(OWNERS),
        freshness_policy=FRESHNESS,
        description="The rehearsal's story: per phase converge time, backup, app latency and 5xx ratio; the "
        "drills' results; a PASS/FAIL verdict naming what failed. Written from the rehearse run's record in "
        "the instance, also for a run that failed (rehearsal_report_job). Numeric metadata plots each figure.",
    )
    def rehearsal_report(context: dg.AssetExecutionContext):
        run_id = reported_run_id(context.run)
        try:
            record = read_run(context.instance, run_id)
        except LookupError as exc:
            raise permanent(f"no rehearsal to report: {exc}. Launch rehearsal_report_job with the tag "
                            "crdb-evolution/report-of set to a rehearse run's id.") from None
        latency = latency_outcomes(context.instance, run_id, {p.name: ENV.asset_key(p) for p in PHASES})
        report = build_report(getattr(context.resources, prom_key), phase_states(record), drill_figures(record),
                              latency, run_reasons(record, CHECK_NAME))
        context.log.info(f"rehearsal {run_id} verdict: {report.verdict_text()}")
        context.add_output_metadata({**metadata(report), "rehearse_run": dg.MetadataValue.text(run_id)})
        return report

    return rehearsal_report
