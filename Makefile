# crdb-live-evolution: the newcomer's commands.
#   make dev    set up (no root), fetch the demo tools, start the Dagster UI, the app, Prometheus and Grafana
#   make test   set up, then run the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help setup test
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

test: setup ## run the whole test suite (installs what it needs first)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Each concern keeps its own targets in mk/<concern>.mk (dev, kind, bench, ...).
-include mk/*.mk
