"""The small cluster-control interface every backend implements, free of Dagster.

Two backends: the new CockroachDB Kubernetes operator (operator.py, CrdbCluster v1beta1) and a cluster of
local `cockroach` processes (local/). Ops only use what is declared here, so a backend stays self-contained.
Dagster stays out of this module on purpose: the local backend's CLI (`python -m
evolution_pipeline.resources.local`, run several times by each `make dev`) imports it, and importing Dagster
costs over a second of CPU per call. The Dagster resource base lives in cluster.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

# Which evolution a backend drives: only a rehearsal may ever be reset.
LIVE, REHEARSAL = "live", "rehearsal"


class ClusterControlError(RuntimeError):
    """A cluster-control call failed; the message says what was called and what to do."""


class ScaleDownRefused(ClusterControlError):
    """The evolution only grows clusters: decommissioning is never part of the main flow."""


@dataclass(frozen=True)
class NodeStatus:
    name: str
    ready: bool
    detail: str = ""


@dataclass(frozen=True)
class ClusterStatus:
    desired_nodes: int
    ready_nodes: int
    # False while the control plane has not yet acted on the latest desired count
    # (operator: fewer or more CrdbNodes than desired).
    settled: bool
    nodes: tuple[NodeStatus, ...] = field(default_factory=tuple)
    message: str = ""

    def is_ready(self, target: int) -> bool:
        return (
            self.settled
            and self.desired_nodes == target
            and self.ready_nodes == target
            and len(self.nodes) == target
            and all(n.ready for n in self.nodes)
        )

    def summary(self) -> str:
        nodes = ", ".join(f"{n.name}={'ready' if n.ready else 'not ready'}{f' ({n.detail})' if n.detail else ''}"
                          for n in self.nodes) or "no nodes"
        settled = "settled" if self.settled else "not yet observed by the control plane"
        text = f"desired={self.desired_nodes} ready={self.ready_nodes} ({settled}); nodes: {nodes}"
        return f"{text}; {self.message}" if self.message else text


class ClusterControl(ABC):
    """What the pipeline needs from whatever runs the CockroachDB nodes."""

    @abstractmethod
    def describe(self) -> str:
        """A short human name for logs and metadata, e.g. 'CrdbCluster crdb/cockroachdb'."""

    @abstractmethod
    def desired_nodes(self) -> int:
        """The node count currently asked for.

        0 when a local cluster has no node yet; the operator backend raises instead when the CrdbCluster
        does not exist (it is applied by hand at phase 0's size, see k8s/README.md).
        """

    @abstractmethod
    def set_desired_nodes(self, nodes: int) -> None:
        """Ask for `nodes` nodes. Callers never pass fewer than desired_nodes()."""

    @abstractmethod
    def status(self) -> ClusterStatus:
        """One observation of the cluster's readiness."""

    def planned_localities(self, nodes: int) -> dict[int, str] | None:
        """The --locality nodes 1..`nodes` start (or will start) with, when the backend decides it; None when
        it cannot know before they run (the operator takes it from the Kubernetes node a pod lands on)."""
        return None

    def reset_rehearsal_environment(self) -> str:
        """Recreate a rehearsal environment from scratch. Only rehearsal backends implement this."""
        raise ClusterControlError(f"{self.describe()} cannot be reset: resetting is for rehearsal environments only")

    def scale_to(self, nodes: int) -> bool:
        """Idempotent, grow-only scale. Returns True when it changed the desired count."""
        if nodes < 1:
            raise ClusterControlError(f"cannot scale {self.describe()} to {nodes} nodes: at least one is needed")
        current = self.desired_nodes()
        if nodes < current:
            raise ScaleDownRefused(
                f"{self.describe()} asks for {current} nodes; refusing to scale down to {nodes}. "
                "The evolution only grows a cluster; decommission nodes by hand if you really mean it."
            )
        if nodes == current:
            return False
        self.set_desired_nodes(nodes)
        return True
