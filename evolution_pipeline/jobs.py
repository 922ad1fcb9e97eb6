"""The evolve job, the rehearsal job, the report-only job and the nightly rehearsal schedule."""

import os

import dagster as dg

from .configuration import backend
from .drills.report import REPORT_NAME
from .environments import EVOLUTION_TAG, LIVE, MAX_RUN_SECONDS, REHEARSAL, Environment

# Crash-only run retries: a run whose worker died (an evicted or OOM-killed run pod, a drained node) is
# re-executed from failure by the daemon, up to twice; a run that failed because a step failed is not (that
# needs a person; the ops retry their own transient errors). Safe because what steps hand on lives in the
# instance (resources/run_state.py), not on the dead pod's disk, and from-failure skips what succeeded.
# dagster-io/dagster python_modules/dagster/dagster/_daemon/auto_run_reexecution/auto_run_reexecution.py:
# should_retry reads dagster/retry_on_asset_or_op_failure and skips RunFailureReason.STEP_FAILURE.
RUN_RETRY_TAGS = {"dagster/max_retries": "2", "dagster/retry_on_asset_or_op_failure": "false"}


def _job(name: str, env: Environment, description: str):
    return dg.define_asset_job(
        name=name,
        # The environment's evolution (phases, and for the rehearsal its reset, drills and report) with their
        # blocking checks, by tag: groups are how people browse, not what a job runs.
        selection=dg.AssetSelection.tag(EVOLUTION_TAG, env.name),
        description=description,
        tags={**env.tags, "dagster/max_runtime": str(MAX_RUN_SECONDS), **RUN_RETRY_TAGS},
    )


evolve = _job("evolve", LIVE,
              "Grow the live cluster 1 -> 2 -> 3 nodes: every phase in order, stopping at the first failed "
              "blocking check. Re-execute from failure to resume where it stopped.")

rehearse = _job("rehearse", REHEARSAL,
                "Rehearse the whole evolution on the rehearsal environment, recreated from scratch first, then "
                "drill it after phase 2 (a node taken away and back, the latest backup restored and compared) "
                "and end with the rehearsal report.")

# The report alone, for a rehearse run that stopped before its report (a failed step or blocking check skips
# everything after it): sensors.py launches it with the tag crdb-evolution/report-of = that run's id, and the
# report reads that run from the instance (drills/report_asset.py). No environment tag: it touches no cluster
# (Prometheus and the instance only), so it never waits behind the next rehearsal in the run queue.
REPORT_JOB_TAG = "crdb-evolution/report"
rehearsal_report_job = dg.define_asset_job(
    name="rehearsal_report_job",
    selection=dg.AssetSelection.assets(REHEARSAL.asset_key(REPORT_NAME)),  # with its verdict check
    description="Write the rehearsal report of a rehearse run that failed before it (tag "
                "crdb-evolution/report-of: that run's id); its verdict check fails this run on FAIL.",
    tags={REPORT_JOB_TAG: REHEARSAL.name},
)


def nightly_rehearsal_schedule(cron: str | None = None, timezone: str | None = None,
                               default_status: str | None = None) -> dg.ScheduleDefinition:
    cron = cron or os.environ.get("REHEARSAL_CRON", "0 2 * * *")
    timezone = timezone or os.environ.get("REHEARSAL_TIMEZONE", "UTC")
    # On by default where the evolution runs for real (the operator backend); off for a laptop's local
    # backend, where a 2 a.m. rehearsal would start three extra cockroach processes unasked.
    backend_default = "RUNNING" if backend() == "operator" else "STOPPED"
    status = (default_status or os.environ.get("REHEARSAL_SCHEDULE_STATUS", backend_default)).upper()
    if status not in dg.DefaultScheduleStatus.__members__:
        # A typo must not take the whole code location down with a bare KeyError.
        raise ValueError(f"REHEARSAL_SCHEDULE_STATUS={status!r}: use RUNNING or STOPPED")
    return dg.ScheduleDefinition(
        name="nightly_rehearsal",
        job=rehearse,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus[status],
        tags={**REHEARSAL.tags, "crdb-evolution/trigger": "nightly"},
        description="Every night, rehearse the topology change on the rehearsal environment before doing it "
                    "for real. Set REHEARSAL_CRON / REHEARSAL_TIMEZONE to move it.",
    )
