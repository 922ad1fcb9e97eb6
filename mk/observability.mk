# Observability: Prometheus + Grafana manifests, dashboards and alert rules (see grafana/README.md).
.PHONY: observability-configmaps observability-check observability-deploy observability-port-forward

OBS_NS := monitoring
# The kubectl to use: the current context by default; `make kind-observability` pins the kind cluster's.
OBS_KUBECTL ?= kubectl

observability-configmaps: ## regenerate the dashboard/rule ConfigMaps in k8s/observability/ from grafana/
	$(PY) grafana/build_configmaps.py

observability-check: ## lint rules/configs and run the observability tests
	$(PY) grafana/build_configmaps.py --check
	promtool check rules grafana/alerts/*.rules.yml
	cd grafana/alerts/tests && promtool test rules *.test.yml
	$(VENV)/bin/pytest tests/observability -q

observability-deploy: ## apply Prometheus + Grafana to the current kube context (creates the Grafana admin Secret if missing)
	$(OBS_KUBECTL) apply -f k8s/observability/00-namespace.yaml
	@if ! $(OBS_KUBECTL) -n $(OBS_NS) get secret grafana-admin >/dev/null 2>&1; then \
	  $(OBS_KUBECTL) -n $(OBS_NS) create secret generic grafana-admin --from-literal=admin-user=admin \
	    --from-literal=admin-password="$$(openssl rand -base64 18)" >/dev/null && \
	  echo "created Secret $(OBS_NS)/grafana-admin (user admin, random password; see grafana/README.md)"; \
	fi
	$(OBS_KUBECTL) apply -f k8s/observability/
	$(OBS_KUBECTL) -n $(OBS_NS) rollout status deploy/prometheus --timeout=180s
	$(OBS_KUBECTL) -n $(OBS_NS) rollout status deploy/grafana --timeout=180s

observability-port-forward: ## Prometheus on 127.0.0.1:9090, Grafana on 127.0.0.1:3000 (Ctrl-C stops both)
	@echo "Grafana password: kubectl -n $(OBS_NS) get secret grafana-admin -o jsonpath='{.data.admin-password}' | base64 -d"
	@$(OBS_KUBECTL) -n $(OBS_NS) port-forward svc/prometheus 9090:9090 & pf=$$!; trap 'kill $$pf' EXIT; \
	$(OBS_KUBECTL) -n $(OBS_NS) port-forward svc/grafana 3000:3000
