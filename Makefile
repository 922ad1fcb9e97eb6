# crdb-live-evolution: the newcomer's commands.
#   make dev    set up (no root), fetch the demo tools, start the Dagster UI, the app, Prometheus and Grafana
#   make test   set up, then run the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help setup test test-quick
# The variables the help texts mention, exported to the help recipe with their values, so `make help`
# shows 127.0.0.1:8000 rather than $(APP_HOST):$(APP_PORT). POSIX awk (BSD awk on macOS too).
HELP_VARS = $(sort $(shell grep -h '^[a-zA-Z_-]*:.*\#\# ' $(MAKEFILE_LIST) | grep -o '[$$]([A-Z_]*)' | tr -d '$$()'))
help: ## list the targets
	@$(foreach v,$(HELP_VARS),$(v)='$($(v))') awk -F ':.*## ' '/^[a-zA-Z_-]+:.*## / { \
	  d = $$2; while (match(d, /[$$][(][A-Z_]+[)]/)) { \
	    d = substr(d, 1, RSTART - 1) ENVIRON[substr(d, RSTART + 2, RLENGTH - 3)] substr(d, RSTART + RLENGTH) } \
	  n++; name[n] = $$1; desc[n] = d; if (length($$1) > w) w = length($$1) } \
	  END { for (i = 1; i <= n; i++) printf("  make %-" w "s  %s\n", name[i], desc[i]) }' $(MAKEFILE_LIST)

setup: ## create .venv and install what the tests need (Python packages, npm packages, Debian test tools)
	@bash scripts/setup.sh

# Workers for pytest-xdist. Most tests wait on servers, timers and subprocesses rather than compute, so more
# workers than cores pays off, up to a point. Measured on 2 cores from a fresh clone: 4 workers 5:49-6:13 of
# pytest, 5 workers 7:13 with 50 CPU-s more (each worker costs a collection, and half of them a bench of servers).
# TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 4

# A run starts some 400 Python processes (workers, apps, code servers, CLIs). With PYTHONDONTWRITEBYTECODE set
# (as on this machine class) each would compile the project's modules again, and each worker would redo
# pytest's assertion rewriting: the test run writes the caches (__pycache__/, gitignored) instead.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(VENV)/bin/pytest

test: setup ## run the whole test suite in $(TEST_WORKERS) parallel workers (installs what it needs first)
	$(PYTEST) -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test-quick: setup ## the inner loop: tests not marked slow, in parallel, stopping at the first failure
	$(PYTEST) -n $(TEST_WORKERS) --dist worksteal -x -m "not slow and not real" $(PYTEST_ARGS)

# Each concern keeps its own targets in mk/<concern>.mk (dev, kind, bench, ...).
-include mk/*.mk
