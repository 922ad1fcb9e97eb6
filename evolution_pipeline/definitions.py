"""The code location (workspace.yaml loads this module): the definitions of evolution_pipeline/defs/, one
module per concern, loaded with `dg.load_from_defs_folder`, plus the resources and the executor."""

from pathlib import Path

import dagster as dg

# The evolution file loads here, at import: a wrong one fails the code location with its one message
# (EvolutionError), before any definitions are built (phases.py).
from . import phases  # noqa: F401
from .resources.alerts import alert_resource
from .resources.run_state import InstanceStateIOManager
from .rotation.job import rotation_resources
from .sensors import RESOURCE_KEY as ALERTS

# Any path inside the project: load_from_defs_folder finds pyproject.toml's [tool.dg] above it (the image
# installs the package editable next to its pyproject.toml, k8s/pipeline/Dockerfile).
PROJECT_PATH = Path(__file__).resolve().parent


def build_definitions(resources: dict, schedule: dg.ScheduleDefinition | None = None) -> dg.Definitions:
    """Everything but the resources is fixed; tests pass doubles, production passes resources_from_env().
    A given schedule replaces the nightly rehearsal schedule of the same name."""
    folder = dg.load_from_defs_folder(path_within_project=PROJECT_PATH)
    if schedule is not None:
        folder = _replace_schedule(folder, schedule)
    return dg.Definitions.merge(folder, dg.Definitions(
        # Every output is handed on through the instance's event log (resources/run_state.py), the one store
        # every run shares on Kubernetes (a pod per run). The credential stores (rotate_credentials) come
        # from the environment unless the caller gives them.
        resources={"io_manager": InstanceStateIOManager(), ALERTS: alert_resource(), **rotation_resources(),
                   **resources},
        # A phase's steps run one after another anyway: one process per run keeps Dagster's own overhead
        # near 0.04 s per step instead of ~3 s for a fresh Python per step (bench/pipeline_overhead.py).
        # Outputs still go through the IO manager, so re-execution from failure loads them in any later run.
        executor=dg.in_process_executor,
    ))


def _replace_schedule(defs: dg.Definitions, schedule: dg.ScheduleDefinition) -> dg.Definitions:
    kept = [s for s in defs.schedules or [] if s.name != schedule.name]
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
                          sensors=defs.sensors, schedules=[*kept, schedule], metadata=defs.metadata,
                          component_tree=defs.component_tree)


@dg.definitions
def defs() -> dg.Definitions:
    """What the webserver, the daemon and every run worker load; built when Dagster asks, not at import."""
    from .configuration import resources_from_env

    return build_definitions(resources_from_env())
