# crdb-live-evolution: the newcomer's commands.
#   make dev    set up, then start the Dagster UI, the sample app and Prometheus (CockroachDB nodes start when a phase runs)
#   make test   set up, then run the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help setup test
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-18s %s\n", $$1, $$2}'

setup: ## create .venv and install Python, Debian and npm dependencies
	@bash scripts/setup.sh

test: setup ## run the whole test suite (installs what it needs first)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Each concern keeps its own targets in mk/<concern>.mk (dev, kind, bench, ...).
-include mk/*.mk
