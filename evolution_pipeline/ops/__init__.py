"""The phase ops: preflight -> backup -> scale -> apply_sql -> verify_replication.

Each op is thin and idempotent: it reads the cluster's real state through a resource, changes only what
differs from the phase table, and returns a small PhaseState. Built once per environment by build_ops().
"""


from dataclasses import dataclass

import dagster as dg

from ..environments import Environment
from .apply_sql import build_apply_sql
from .backup import build_backup
from .preflight import build_preflight
from .scale import build_scale
from .verify import build_verify_replication


@dataclass(frozen=True)
class PhaseOps:
    preflight: dg.OpDefinition
    backup: dg.OpDefinition
    scale: dg.OpDefinition
    apply_sql: dg.OpDefinition
    verify_replication: dg.OpDefinition


def build_ops(env: Environment) -> PhaseOps:
    return PhaseOps(
        preflight=build_preflight(env),
        backup=build_backup(env),
        scale=build_scale(env),
        apply_sql=build_apply_sql(env),
        verify_replication=build_verify_replication(env),
    )
