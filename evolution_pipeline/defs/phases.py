"""Each environment's phases: one graph-backed asset per phase (after the rehearsal's reset) and its checks.

A factory over the phase table rather than a Component: the evolution file (EVOLUTION_PLAN) is already the
declarative surface, validated by its own model with its own messages, and read by `plan` and the docs too.
"""

import dagster as dg

from ..assets import build_assets
from ..checks import build_checks
from ..environments import ENVIRONMENTS


@dg.definitions
def phases() -> dg.Definitions:
    return dg.Definitions(
        assets=[asset for env in ENVIRONMENTS for asset in build_assets(env)],
        asset_checks=[check for env in ENVIRONMENTS for check in build_checks(env)],
    )
