"""LocalClusterBackend: the local backend's configuration without Dagster, what LocalClusterResource is to a run.

`python -m evolution_pipeline plan` reads the cluster through it, and importing Dagster costs ~2 CPU-seconds per
call. Its fields and defaults are LocalClusterResource's (resource.py, tests/plan/test_plan_imports.py holds the
two together) and its methods are the resource's own (LocalClusterMethods); both build their LocalClusterConfig in this
package's settings.py. evolution_pipeline/settings.py (plan_resources) configures it from the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from evolution_pipeline.resources.cluster_control import LIVE

from .binary import require_cockroach
from .control import LocalClusterConfig, LocalClusterControl
from .settings import FIELD_DEFAULTS as D
from .settings import local_cluster_config


class LocalClusterMethods:
    """What the local backend does with its fields (config, describe_offline, scale_commands, control), free
    of Dagster: LocalClusterBackend here and LocalClusterResource (resource.py) both hold the fields."""

    def config(self) -> LocalClusterConfig:
        return local_cluster_config(self.environment, **{name: getattr(self, name) for name in D})

    def describe_offline(self) -> str:
        return LocalClusterControl(self.config()).describe()

    def scale_commands(self, current: int, target: int) -> list[str]:
        """The processes scale_to(target) starts: one `cockroach start` per new node, with the same flags,
        and `cockroach init` once after the first (the binary may not be installed yet: then `cockroach`)."""
        control = LocalClusterControl(self.config())
        binary = control.config.cockroach_bin or "cockroach"
        commands = [" ".join(control.start_args(control.node(i), binary)) + " &"
                    for i in range(current + 1, target + 1)]
        if current == 0 and target > 0:
            commands.append(" ".join(control.init_args(binary)))
        return commands

    def control(self) -> LocalClusterControl:
        # Fail at once (the first op of a phase) when there is no binary, with the one message on getting it.
        require_cockroach(self.cockroach_bin)
        return LocalClusterControl(self.config())


@dataclass(frozen=True)
class LocalClusterBackend(LocalClusterMethods):
    """Cluster control over local `cockroach` processes (EVOLUTION_CLUSTER_BACKEND=local), configured.

    Empty strings mean "work it out": cockroach_bin from $COCKROACH_BIN or PATH, data_dir `.data/local`
    (live) or `.data/rehearsal` (rehearsal). A rehearsal needs its own data_dir and port bases.
    """

    environment: str = LIVE
    ready_timeout_seconds: float = 900.0
    poll_interval_seconds: float = 5.0
    # The local settings (settings.FIELD_DEFAULTS, which the resource and the CLI use too).
    cockroach_bin: str = D["cockroach_bin"]
    data_dir: str = D["data_dir"]
    live_data_dir: str = D["live_data_dir"]
    host: str = D["host"]
    sql_port_base: int = D["sql_port_base"]
    listen_port_base: int = D["listen_port_base"]
    http_port_base: int = D["http_port_base"]
    insecure: bool = D["insecure"]
    region: str = D["region"]
    zones: tuple[str, ...] = tuple(D["zones"])
    cache: str = D["cache"]
    max_sql_memory: str = D["max_sql_memory"]
    cluster_label: str = D["cluster_label"]
    prometheus_dir: str = D["prometheus_dir"]
    node_start_timeout_seconds: float = D["node_start_timeout_seconds"]
