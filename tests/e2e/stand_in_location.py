"""Code location for the end-to-end tests and the pipeline benchmark: the real definitions, with the
stand-in resources wired from the TEST_* environment variables (tests/pipeline/stand_ins.py).

`dagster dev` loads it through a workspace file the test writes (tests/support/dagster_dev.py).
TEST_INSTANT=1 shortens every poll interval (tests/e2e/instant.py) for the overhead benchmark.
"""

import os

from evolution_pipeline.definitions import build_definitions
from tests.e2e.instant import instant
from tests.pipeline.stand_ins import stand_in_resources_from_env

_resources = stand_in_resources_from_env()
if os.environ.get("TEST_INSTANT") == "1":
    _resources = instant(_resources)

defs = build_definitions(_resources)
