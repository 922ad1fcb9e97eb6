# Local development: everything on this machine (see scripts/dev.sh and evolution_pipeline/resources/local/).
.PHONY: dev local-status local-stop

dev: ## start everything locally: Dagster UI :3000, sample app :8000, Prometheus :9090 (Ctrl-C stops them)
	@bash scripts/dev.sh

local-status: setup ## show the local CockroachDB nodes (pids, /health?ready=1, node status)
	@$(PY) -m evolution_pipeline.resources.local status

local-stop: setup ## stop the local CockroachDB nodes (make dev leaves them running; data is kept)
	@$(PY) -m evolution_pipeline.resources.local stop
