"""The evolution's jobs (evolve, rehearse: each selects its environment's assets by tag), the report-only job
and the nightly rehearsal schedule (REHEARSAL_CRON, REHEARSAL_TIMEZONE, REHEARSAL_SCHEDULE_STATUS)."""

import dagster as dg

from ..jobs import evolve, nightly_rehearsal_schedule, rehearsal_report_job, rehearse


@dg.definitions
def jobs() -> dg.Definitions:
    return dg.Definitions(jobs=[evolve, rehearse, rehearsal_report_job], schedules=[nightly_rehearsal_schedule()])
