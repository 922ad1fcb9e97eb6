"""The end-to-end tests reuse the pipeline's bench: a real Prometheus scraping stand-in CockroachDB nodes
that follow a world file, the wire-level CockroachDB stand-in of each environment and the real sample app
(one per environment, each on its own PostgreSQL), and the env variables the stand-in code location reads."""

from tests.pipeline.conftest import _passwords, bench, crdbs, stand_in_env, worlds  # noqa: F401
