"""The Dagster face of a cluster-control backend: the resource base every backend's resource subclasses.

The interface itself (ClusterControl, ClusterStatus, the errors, LIVE/REHEARSAL) lives in cluster_control.py,
free of Dagster; it is re-exported here so `from evolution_pipeline.resources.cluster import X` keeps working.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import dagster as dg

from .cluster_control import (
    LIVE,
    REHEARSAL,
    ClusterControl,
    ClusterControlError,
    ClusterStatus,
    NodeStatus,
    ScaleDownRefused,
)

__all__ = [
    "LIVE",
    "REHEARSAL",
    "ClusterControl",
    "ClusterControlError",
    "ClusterControlResource",
    "ClusterStatus",
    "NodeStatus",
    "ScaleDownRefused",
]


class ClusterControlResource(dg.ConfigurableResource, ABC):
    """Base of the cluster-control resources; the ops depend on this type only.

    `environment` says which evolution this resource drives. Only a `rehearsal` environment may ever be
    reset; backends enforce that a rehearsal never points at the live cluster's name and namespace/folder.
    """

    environment: str = LIVE
    ready_timeout_seconds: float = 900.0
    poll_interval_seconds: float = 5.0

    @abstractmethod
    def control(self) -> ClusterControl:
        """Build the backend for one op execution."""

    # --- the plan (evolution_pipeline/plan.py): what a scale would do, known without reaching the cluster

    def describe_offline(self) -> str:
        """Like ClusterControl.describe(), from the configuration alone."""
        return f"{type(self).__name__} ({self.environment})"

    def scale_commands(self, current: int, target: int) -> list[str]:
        """The commands a person would run to do what scale_to(target) does from `current` nodes."""
        return [f"# ask the cluster for {target} node(s) (it has {current})"]
