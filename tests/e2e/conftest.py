"""The end-to-end tests reuse the pipeline's bench: a real Prometheus scraping stand-in CockroachDB nodes
that follow a world file, stand-in app APIs, and the env variables the stand-in code location reads."""

from tests.pipeline.conftest import _passwords, bench, stand_in_env, worlds  # noqa: F401
