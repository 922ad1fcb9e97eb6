"""A code location for tests/manifests/test_unprivileged_run.py: the pipeline's own rehearsal reset asset
(evolution_pipeline.assets.fresh_rehearsal_environment, with its pool) against the file-backed stand-in
cluster (tests/doubles/pipeline_world.py, path in TEST_WORLD), run as the image's user would run it."""

import os

import dagster as dg

from evolution_pipeline.assets import fresh_rehearsal_environment
from evolution_pipeline.environments import REHEARSAL
from tests.doubles.pipeline_world import WorldClusterResource

fresh_environment = fresh_rehearsal_environment()

defs = dg.Definitions(
    assets=[fresh_environment],
    jobs=[dg.define_asset_job("fresh", selection=[fresh_environment.key], tags=REHEARSAL.tags)],
    resources={
        REHEARSAL.resource_key("cluster"): WorldClusterResource(
            world_path=os.environ.get("TEST_WORLD", "/nonexistent/world.json"),
            environment="rehearsal",
            ready_timeout_seconds=10,
            poll_interval_seconds=0.05,
        )
    },
    # As the code location (evolution_pipeline/definitions.py): steps run in the run's own process.
    executor=dg.in_process_executor,
)
