"""The phase ops: preflight -> backup -> scale -> apply_sql -> verify_replication.

Each op is thin and idempotent: it reads the cluster's real state through a resource, changes only what
differs from the phase table, and returns a small PhaseState. Built once per environment and phase by
build_ops(), each op closing over its Phase: no phase is looked up from a string (state or run config).
"""


from dataclasses import dataclass

import dagster as dg

from ..environments import Environment
from ..phases import Phase
from .apply_sql import build_apply_sql
from .backup import build_backup
from .preflight import build_preflight
from .scale import build_scale
from .verify import build_verify_replication

STEPS = ("preflight", "backup", "scale", "apply_sql", "verify_replication")


@dataclass(frozen=True)
class PhaseOps:
    env: Environment
    preflight: dg.OpDefinition
    backup: dg.OpDefinition
    scale: dg.OpDefinition
    apply_sql: dg.OpDefinition
    verify_replication: dg.OpDefinition

    def node(self, step: str):
        """The step as a node of its phase's graph, under the name it always had there (env.op_name(step)):
        step keys stay `phase1_two_nodes.scale` / `rehearsal__phase1_two_nodes.rehearsal_scale`, the keys a
        re-execution from failure of an older run, the docs and the tests name."""
        return getattr(self, step).alias(self.env.op_name(step))


def build_ops(env: Environment, phase: Phase) -> PhaseOps:
    return PhaseOps(
        env=env,
        preflight=build_preflight(env, phase),
        backup=build_backup(env, phase),
        scale=build_scale(env, phase),
        apply_sql=build_apply_sql(env, phase),
        verify_replication=build_verify_replication(env, phase),
    )
