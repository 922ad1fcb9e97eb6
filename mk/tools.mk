# Outside tools, fetched when missing (scripts/fetch_tools.py: pinned official releases from versions.toml,
# checksum-verified, into the gitignored .data/bin/). Tools already on PATH come first; .data/bin is last.
.PHONY: tools kind-tools docker-check

TOOLS_BIN := $(CURDIR)/.data/bin
export PATH := $(PATH):$(TOOLS_BIN)
# The fetcher needs Python 3.11+ (tomllib): the venv's when there is one.
TOOLS_PY = $(if $(wildcard $(PY)),$(PY),python3)

tools: ## fetch cockroach, Prometheus and Grafana into .data/bin when they are not on PATH
	@$(TOOLS_PY) scripts/fetch_tools.py cockroach prometheus grafana

kind-tools: ## fetch kind, kubectl and helm into .data/bin when they are not on PATH
	@$(TOOLS_PY) scripts/fetch_tools.py kind kubectl helm >/dev/null || { \
	  echo "the kind targets need the tools named above: install them (or re-run when online) and try again"; exit 1; }

docker-check:
	@command -v docker >/dev/null 2>&1 || { echo "docker is missing: kind runs Kubernetes nodes as docker containers;" \
	  "install Docker Engine or Docker Desktop (https://docs.docker.com/get-docker/) and try again"; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "docker is installed but its daemon does not answer (docker info):" \
	  "start Docker (or add yourself to the docker group) and try again"; exit 1; }

# Every kind target needs kind, kubectl and helm; the two that create containers or images need docker.
kind-up kind-image kind-certs kind-crdb kind-app kind-pipeline kind-license kind-loadgen kind-status kind-down: kind-tools
kind-up kind-image: docker-check
