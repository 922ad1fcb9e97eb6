"""Zone configs for a phase, derived from the phase table (the RF lives nowhere else).

CockroachDB sets replication through zone configs, not a cluster setting: `RANGE default` for all data,
and the system database plus the meta/system/liveness ranges for system data (default 5 replicas).
"""

from __future__ import annotations

from .phases import Phase
from .resources.sql import ZONE_TARGETS_DATA, ZONE_TARGETS_SYSTEM


def zone_plan(phase: Phase) -> list[tuple[str, int]]:
    return [(t, phase.replication_factor) for t in ZONE_TARGETS_DATA] + [
        (t, phase.system_replication_factor) for t in ZONE_TARGETS_SYSTEM
    ]


def zone_statements(phase: Phase) -> list[str]:
    """The statements apply_sql runs, as text, for the docs and the run log."""
    return [f"ALTER {target} CONFIGURE ZONE USING num_replicas = {n};" for target, n in zone_plan(phase)]
