"""What every phase op shares: resource lookup, timing, and failures that say what to do."""


import time
from contextlib import contextmanager

import dagster as dg

from ..environments import Environment
from ..phases import Phase
from ..tracing import traced_step

# Transient trouble (API hiccups, a node restarting) is retried; everything the ops raise as
# `permanent()` is not, because retrying cannot fix it.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def phase_op(env: Environment, phase: Phase, step: str, *kinds: str, retry: bool = True, **op_kwargs):
    """The decorator every phase step shares: a name unique to (environment, phase, step), its resources, the
    env's pool, retries. The op body closes over its phase, so nothing looks a phase up from a string.

    op_kwargs go to dg.op as they are (preflight's `ins`/`out`)."""
    op = dg.op(
        name=op_name(env, phase, step),
        required_resource_keys=keys(env, *kinds),
        retry_policy=TRANSIENT_RETRY if retry else None,
        tags={"step": step},
        pool=env.pool,
        **op_kwargs,
    )
    return lambda fn: op(traced_step(step, phase)(fn))  # a span per step when tracing is on (..tracing)


def op_name(env: Environment, phase: Phase, step: str) -> str:
    """The op's definition name, unique in a job as Dagster requires (job_definition.py: "Detected conflicting
    node definitions with the same name"): Dagster's own naming for an asset's op, `<asset key>_<step>`
    (phase1_two_nodes_scale, rehearsal__phase1_two_nodes_scale). Inside its phase's graph the op is invoked
    under the step's old name (assets.py), so step keys stay phase1_two_nodes.scale."""
    return f"{env.asset_key(phase).to_python_identifier()}_{step}"


def resource(context, env: Environment, kind: str):
    return getattr(context.resources, env.resource_key(kind))


def keys(env: Environment, *kinds: str) -> set[str]:
    return {env.resource_key(k) for k in kinds}


def permanent(message: str, **metadata) -> dg.Failure:
    """A failure retrying cannot fix. Its message is what the Dagster UI shows: say what went wrong and what
    to do (fix, restart, re-execute). Raise it `from None`: the message already carries the cause, and a
    chained traceback of our own code ("The above exception was the direct cause...") would bury it."""
    return dg.Failure(description=message, metadata=metadata or None, allow_retries=False)


@contextmanager
def timed():
    box = {"seconds": 0.0}
    start = time.monotonic()
    try:
        yield box
    finally:
        box["seconds"] = time.monotonic() - start
