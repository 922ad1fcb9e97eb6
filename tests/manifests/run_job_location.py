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


defs = dg.Definitions(jobs=[evolve, broken_job])
