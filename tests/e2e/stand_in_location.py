"""Code location for the end-to-end tests and the pipeline benchmark: the real definitions, with the
stand-in resources wired from the TEST_* environment variables (tests/pipeline/stand_ins.py).

`dagster dev` loads it through a workspace file the test writes (tests/support/dagster_dev.py).
"""

from evolution_pipeline.definitions import build_definitions
from tests.pipeline.stand_ins import stand_in_resources_from_env

defs = build_definitions(stand_in_resources_from_env())
