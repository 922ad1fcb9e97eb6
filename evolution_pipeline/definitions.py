"""The code location: assets, checks, jobs, schedule and resources (workspace.yaml loads this module)."""

import dagster as dg

from .assets import all_assets
from .checks import all_checks
from .jobs import evolve, nightly_rehearsal_schedule, rehearsal_report_job, rehearse
from .resources.alerts import alert_resource
from .resources.run_state import InstanceStateIOManager
from .rotation.job import (
    ROTATION_JOBS,
    rotation_assets,
    rotation_checks,
    rotation_resources,
    rotation_schedule,
)
from .sensors import RESOURCE_KEY as ALERTS
from .sensors import build_failure_sensor, build_report_sensor


def build_definitions(resources: dict, schedule: dg.ScheduleDefinition | None = None) -> dg.Definitions:
    """Everything but the resources is fixed; tests pass doubles, production passes resources_from_env()."""
    return dg.Definitions(
        assets=all_assets() + rotation_assets(),
        asset_checks=all_checks() + rotation_checks(),
        jobs=[evolve, rehearse, rehearsal_report_job, *ROTATION_JOBS.values()],
        schedules=[schedule or nightly_rehearsal_schedule(), rotation_schedule()],
        # The failure alert watches every job of this code location, ad-hoc asset runs included; the report
        # sensor gives a rehearse run that failed before its report a report-only run.
        sensors=[build_failure_sensor(), build_report_sensor()],
        # Every output is handed on through the instance's event log (resources/run_state.py), the one store
        # every run shares on Kubernetes (a pod per run). The credential stores (rotate_credentials) come
        # from the environment unless the caller gives them.
        resources={"io_manager": InstanceStateIOManager(), ALERTS: alert_resource(), **rotation_resources(),
                   **resources},
        # A phase's steps run one after another anyway: one process per run keeps Dagster's own overhead
        # near 0.04 s per step instead of ~3 s for a fresh Python per step (bench/pipeline_overhead.py).
        # Outputs still go through the IO manager, so re-execution from failure loads them in any later run.
        executor=dg.in_process_executor,
    )


def _load() -> dg.Definitions:
    from .configuration import resources_from_env

    return build_definitions(resources_from_env())


defs = _load()
