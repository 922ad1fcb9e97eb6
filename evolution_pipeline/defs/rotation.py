"""Credential rotation: the app_credentials asset and its checks per environment, a job per environment and
the weekly schedule. The credential stores are resources, chosen with the others (definitions.py)."""

import dagster as dg

from ..rotation.job import ROTATION_JOBS, rotation_assets, rotation_checks, rotation_schedule


@dg.definitions
def rotation() -> dg.Definitions:
    return dg.Definitions(assets=rotation_assets(), asset_checks=rotation_checks(),
                          jobs=list(ROTATION_JOBS.values()), schedules=[rotation_schedule()])
