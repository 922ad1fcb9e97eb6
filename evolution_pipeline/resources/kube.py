"""The Kubernetes client, imported when a client is first made, not when the code location loads.

Any `import kubernetes...` runs the package's __init__, which loads the whole client with every API model: about
1 CPU-second, more than importing Dagster. Every process that loads the code location would pay it (the code
server, each run's worker or pod, `python -m evolution_pipeline plan`), with the local backend too, which never
talks to Kubernetes. So the operator backend and the Secret store reach the package through these functions.
"""

from __future__ import annotations

import functools
from types import ModuleType


@functools.cache
def _package() -> ModuleType:
    import kubernetes.client
    import kubernetes.config

    return kubernetes


def client() -> ModuleType:
    """kubernetes.client: ApiClient, Configuration, CoreV1Api, CustomObjectsApi."""
    return _package().client


def config() -> ModuleType:
    """kubernetes.config: load_kube_config, load_incluster_config, ConfigException."""
    return _package().config


def api_exception() -> type[Exception]:
    """kubernetes.client.exceptions.ApiException, for `except kube.api_exception() as exc:` (an except clause's
    expression is evaluated only when an exception reaches it, by then the client exists)."""
    return _package().client.exceptions.ApiException
