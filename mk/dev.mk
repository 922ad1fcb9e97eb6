# Local development: everything on this machine (see scripts/dev.sh and evolution_pipeline/resources/local/).
# None of these needs root: they set up the venv only (scripts/setup.sh dev); `make test` installs the rest.
.PHONY: dev setup-dev local-status local-stop

dev: ## start everything locally: Dagster UI :3000, sample app :8000, Prometheus :9090, Grafana :3030 (Ctrl-C stops them)
	@bash scripts/dev.sh

setup-dev: ## create .venv with what make dev needs (no root, no system packages)
	@bash scripts/setup.sh dev

local-status: setup-dev ## show the local CockroachDB nodes (pids, /health?ready=1, node status)
	@$(PY) -m evolution_pipeline.resources.local status

local-stop: setup-dev ## stop the local CockroachDB nodes (make dev leaves them running; data is kept)
	@$(PY) -m evolution_pipeline.resources.local stop
