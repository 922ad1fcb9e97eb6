"""Live and rehearsal: the same phases, wired to different resources.

The rehearsal copies every phase asset under the `rehearsal/` key prefix and binds its ops to resources
named `rehearsal_<kind>`, so a rehearsal run can never reach the live cluster's resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .evolution.model import Phase

if TYPE_CHECKING:
    import dagster as dg

ENVIRONMENT_TAG = "crdb-evolution/environment"
# On every asset of an environment's evolution (its reset, phases, drills and report), never on credential
# rotation: `evolve` and `rehearse` select their assets by this tag, so asset groups stay free for people.
EVOLUTION_TAG = "crdb-evolution/evolution"
# Who answers for every asset of this code location (shown in the UI's owner column and filter): the team that
# runs the cluster. Dagster takes an email or "team:<name>".
OWNERS = ("team:database-platform",)
# The longest an evolve or rehearse run may take (dagster/max_runtime): the rehearsal report's freshness
# allows one night plus this.
MAX_RUN_SECONDS = 4 * 3600
RESOURCE_KINDS = ("cluster", "crdb", "prometheus", "grafana", "sample_app")


@dataclass(frozen=True)
class Environment:
    name: str
    prefix: str  # "" for live

    def resource_key(self, kind: str) -> str:
        return f"{self.prefix}_{kind}" if self.prefix else kind

    def op_name(self, op: str) -> str:
        return f"{self.prefix}_{op}" if self.prefix else op

    def asset_key(self, phase_or_name: Phase | str) -> dg.AssetKey:
        # Imported here, not at the top: `python -m evolution_pipeline` then reports a broken evolution file
        # without importing Dagster (0.1 s of CPU instead of 1.5 s).
        import dagster as dg

        name = phase_or_name if isinstance(phase_or_name, str) else phase_or_name.name
        return dg.AssetKey([self.prefix, name] if self.prefix else [name])

    @property
    def group(self) -> str:
        return "rehearsal" if self.prefix else "evolution"

    @property
    def pool(self) -> str:
        # One evolution at a time per environment, even for ad hoc materializations from the UI.
        return f"crdb-evolution-{self.name}"

    @property
    def tags(self) -> dict[str, str]:
        return {ENVIRONMENT_TAG: self.name}

    @property
    def evolution_tags(self) -> dict[str, str]:
        """The asset tags that put an asset in this environment's evolution job."""
        return {EVOLUTION_TAG: self.name}


LIVE = Environment("live", "")
REHEARSAL = Environment("rehearsal", "rehearsal")
ENVIRONMENTS = (LIVE, REHEARSAL)
