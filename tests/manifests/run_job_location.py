"""A tiny code location for tests/manifests/test_run_job.py: one job that succeeds, one that fails."""

import dagster as dg


@dg.op
def fine() -> int:
    return 1


@dg.op
def explode() -> None:
    raise RuntimeError("this op fails on purpose")


@dg.job
def evolve():
    fine()


@dg.job(name="broken")
def broken_job():
    explode()


# In-process steps, as the real code location runs them (evolution_pipeline/definitions.py): Dagster's default
# executor would start one more Python per step, ~4 s and ~3 CPU-s of each run, for nothing the launcher sees.
defs = dg.Definitions(jobs=[evolve, broken_job], executor=dg.in_process_executor)
