"""The Dagster face of the operator backend: CrdbOperatorResource, cluster control through one CrdbCluster.

What it does with its fields (control(), and the plan's describe_offline and scale_commands) is
CrdbOperatorMethods' in operator.py, free of Dagster, with the backend itself; this module only declares the
fields Dagster configures. Import it from here: operator.py never imports Dagster.
"""

from __future__ import annotations

from pydantic import Field

from .cluster import ClusterControlResource
from .operator import CLUSTER_MANIFEST, CrdbOperatorMethods


class CrdbOperatorResource(CrdbOperatorMethods, ClusterControlResource):
    """Cluster control for the CockroachDB operator (CrdbCluster v1beta1) in one namespace.

    The methods are CrdbOperatorMethods'; the fields and defaults are CrdbOperatorBackend's too
    (tests/plan/test_plan_imports.py holds them together).
    """

    namespace: str = Field(default="crdb", description="Namespace of the CrdbCluster.")
    cluster_name: str = Field(default="cockroachdb", description="metadata.name of the CrdbCluster.")
    kubeconfig: str | None = Field(
        default=None,
        description="Path to a kubeconfig; unset: in-cluster config inside a pod, else the default.",
    )
    context: str | None = Field(default=None, description="kubeconfig context; unset: the current context.")
    live_namespace: str = Field(
        default="crdb", description="The LIVE cluster's namespace; a rehearsal must never use it."
    )
    live_cluster_name: str = Field(default="cockroachdb", description="The LIVE CrdbCluster's name.")
    request_timeout_seconds: float = Field(
        default=30.0, description="Timeout of each Kubernetes API request."
    )
    cluster_manifest: str = Field(
        default=CLUSTER_MANIFEST,
        description="CrdbCluster manifest the rehearsal reset recreates from (relative to the repo root).",
    )
