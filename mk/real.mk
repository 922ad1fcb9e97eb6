# Real-cluster conformance (tests/real/): the whole evolve job on official `cockroach` processes started by
# the local backend, the real sample app under load and a real Prometheus. Needs the binary: COCKROACH_BIN,
# `cockroach` on PATH, or `python3 scripts/fetch_tools.py cockroach` (the version pinned in versions.toml).
# Without one it stops at once with one line saying so, non-zero: a skipped conformance suite proves nothing.
# REAL_WORKDIR=<dir> keeps the run's folder (stores, logs of the nodes, the app and Prometheus) instead of a
# temporary one; REAL_PYTEST_ARGS passes extra pytest options (e.g. -x). EVOLUTION_PLAN picks the evolution
# (default evolutions/demo.yaml): `make test-real EVOLUTION_PLAN=evolutions/three-zones.yaml` runs six nodes.
.PHONY: test-real
REAL_PYTEST_ARGS ?=

test-real: setup ## real-cluster conformance: the evolve job on real CockroachDB nodes (needs the cockroach binary)
	@$(PY) -m tests.real.binary >/dev/null
	$(if $(EVOLUTION_PLAN),EVOLUTION_PLAN=$(EVOLUTION_PLAN) )$(VENV)/bin/pytest -m real tests/real $(REAL_PYTEST_ARGS)
