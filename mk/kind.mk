# Kind quick start: a laptop Kubernetes with the operator-managed CockroachDB, the sample app, the load
# generator, Prometheus/Grafana and the Dagster pipeline (k8s/README.md walks through the same steps).
# Needs docker, kind, kubectl and helm on the PATH. Install order matters:
#   cert-manager -> trust-manager -> CockroachDB operator (cloudRegion) -> CRD Established -> our manifests.
.PHONY: kind-up kind-install kind-image kind-certs kind-crdb kind-app kind-observability kind-pipeline kind-license \
	kind-loadgen kind-status kind-down

KIND_CLUSTER ?= crdb-live-evolution
# The operator needs Kubernetes 1.30 or newer (upstream CI runs kindest/node v1.30.x).
KIND_NODE_IMAGE ?= kindest/node:v1.30.6
CERT_MANAGER_VERSION ?= v1.16.2
TRUST_MANAGER_VERSION ?= v0.12.0
# cockroachdb/helm-charts commit with the new operator chart (cockroachdb-parent/charts/operator).
HELM_CHARTS_REF ?= a26cc90
HELM_CHARTS_DIR ?= .data/helm-charts
# Must equal regions[0].code in k8s/crdb-cluster.yaml and the kind nodes' region label.
CRDB_REGION ?= us-east1
OPERATOR_NS ?= crdb-operator
# The Dagster chart version follows the dagster package installed from pyproject.toml.
DAGSTER_CHART_VERSION ?= $(shell $(PY) -c 'import dagster; print(dagster.__version__)' 2>/dev/null || echo 1.13.27)
IMAGE ?= crdb-live-evolution:0.1.0
# Dagster's own namespace (k8s/00-namespaces.yaml): the chart's Role, run Jobs and the pipeline's Secrets.
DAGSTER_NS ?= dagster
KUBECTL ?= kubectl --context kind-$(KIND_CLUSTER)
HELM ?= helm --kube-context kind-$(KIND_CLUSTER)

kind-up: ## create the kind cluster (1 control plane + 6 workers, two in each of us-east1-a/b/c)
	@if kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
	  echo "kind cluster $(KIND_CLUSTER) already exists"; \
	else \
	  kind create cluster --name $(KIND_CLUSTER) --image $(KIND_NODE_IMAGE) --config k8s/kind/kind-config.yaml; \
	fi
	$(KUBECTL) get nodes -L topology.kubernetes.io/region,topology.kubernetes.io/zone

kind-install: ## install everything on kind, in order (safe to re-run)
	@# Sequential sub-makes, not prerequisites: the order is the point, even under make -j.
	$(MAKE) kind-up
	$(MAKE) kind-image
	$(MAKE) kind-certs
	$(MAKE) kind-crdb
	$(MAKE) kind-app
	$(MAKE) kind-observability
	$(MAKE) kind-pipeline
	@# Nothing here waits for the sample app: its /readyz needs the database and users that phase 0 of the
	@# evolve job creates (tests/manifests/test_wait_order.py keeps every wait after what it waits for).
	@echo "Installed. Next: make kind-license (needs your key), make kind-loadgen, then run the evolve job in Dagster:"
	@echo "  $(KUBECTL) -n $(DAGSTER_NS) port-forward svc/dagster-dagster-webserver 3001:80   # http://127.0.0.1:3001"

kind-image: ## build the project image and load it into the kind nodes
	docker build -f k8s/pipeline/Dockerfile -t $(IMAGE) .
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)

kind-certs: ## cert-manager + trust-manager, then the CA, node/root/http certificates and the CA ConfigMap
	$(HELM) repo add jetstack https://charts.jetstack.io --force-update
	$(HELM) upgrade --install cert-manager jetstack/cert-manager -n cert-manager --create-namespace \
	  --version $(CERT_MANAGER_VERSION) --set crds.enabled=true --wait
	$(HELM) upgrade --install trust-manager jetstack/trust-manager -n cert-manager \
	  --version $(TRUST_MANAGER_VERSION) --wait
	$(KUBECTL) apply -f k8s/00-namespaces.yaml -f k8s/app/00-namespace.yaml
	$(KUBECTL) apply -f k8s/tls/00-ca.yaml
	$(KUBECTL) -n cert-manager wait --for=condition=Ready certificate/crdb-ca --timeout=120s
	$(KUBECTL) apply -f k8s/tls/10-certificates.yaml -f k8s/tls/20-ca-bundle.yaml -f k8s/tls/30-rehearsal-certificates.yaml \
	  -f k8s/tls/40-pipeline-certificates.yaml
	$(KUBECTL) -n crdb wait --for=condition=Ready certificate --all --timeout=120s
	$(KUBECTL) -n crdb-rehearsal wait --for=condition=Ready certificate --all --timeout=120s
	$(KUBECTL) -n $(DAGSTER_NS) wait --for=condition=Ready certificate --all --timeout=120s
	@for i in $$(seq 60); do $(KUBECTL) -n crdb get configmap cockroachdb-ca >/dev/null 2>&1 && exit 0; sleep 2; done; \
	  echo "ConfigMap crdb/cockroachdb-ca did not appear: check trust-manager (kubectl -n cert-manager logs deploy/trust-manager)"; exit 1

kind-crdb: ## the CockroachDB operator (cloudRegion=$(CRDB_REGION)), then the CrdbCluster and its Services
	@if [ ! -d $(HELM_CHARTS_DIR)/.git ]; then \
	  git clone --filter=blob:none https://github.com/cockroachdb/helm-charts.git $(HELM_CHARTS_DIR); fi
	git -C $(HELM_CHARTS_DIR) fetch --quiet origin
	git -C $(HELM_CHARTS_DIR) checkout --quiet $(HELM_CHARTS_REF)
	$(HELM) upgrade --install crdb-operator $(HELM_CHARTS_DIR)/cockroachdb-parent/charts/operator \
	  -n $(OPERATOR_NS) --create-namespace --set cloudRegion=$(CRDB_REGION) --set numReplicas=1 --wait
	@# The operator registers its CRDs itself once it runs: wait for them to exist, then to be Established.
	@for i in $$(seq 90); do $(KUBECTL) get crd crdbclusters.crdb.cockroachlabs.com >/dev/null 2>&1 && exit 0; sleep 2; done; \
	  echo "crd/crdbclusters.crdb.cockroachlabs.com never appeared: check the operator (kubectl -n $(OPERATOR_NS) logs deploy/cockroach-operator)"; exit 1
	$(KUBECTL) wait --for=condition=Established crd/crdbclusters.crdb.cockroachlabs.com --timeout=120s
	$(KUBECTL) apply -f k8s/crdb-rbac.yaml
	@# Apply the CrdbCluster only when it does not exist yet: afterwards the pipeline owns spec.regions[0].nodes.
	@if $(KUBECTL) -n crdb get crdbcluster cockroachdb >/dev/null 2>&1; then \
	  echo "CrdbCluster crdb/cockroachdb exists: not re-applying k8s/crdb-cluster.yaml (it would reset nodes to 1)"; \
	else $(KUBECTL) apply -f k8s/crdb-cluster.yaml; fi
	$(KUBECTL) apply -f k8s/services.yaml -f k8s/rehearsal/services.yaml
	@# Ready as the pipeline judges it (evolution_pipeline/resources/operator.py): the cluster's CrdbNode has
	@# PodReady=True and its pod is Ready. status.readyNodes is not relied on: no public source shows the
	@# operator writing it.
	@for i in $$(seq 120); do \
	  $(KUBECTL) -n crdb get pods -l crdb.cockroachlabs.com/cluster=cockroachdb -o name 2>/dev/null | grep -q . && exit 0; sleep 5; \
	done; echo "no pod labelled crdb.cockroachlabs.com/cluster=cockroachdb after 10 minutes: kubectl -n crdb get crdbnodes,pods; kubectl -n $(OPERATOR_NS) logs deploy/cockroach-operator"; exit 1
	$(KUBECTL) -n crdb wait --for=condition=PodReady crdbnode -l crdb.cockroachlabs.com/cluster=cockroachdb --timeout=600s
	$(KUBECTL) -n crdb wait --for=condition=Ready pod -l crdb.cockroachlabs.com/cluster=cockroachdb --timeout=600s

kind-app: ## the sample app (demo credentials) in namespace crdb-demo, and the rehearsal's own app
	@# The whole directory, as the seed applies it: 00-namespace.yaml sorts first (kubectl reads files in
	@# lexical order; tests/manifests/test_apply_order.py replays it).
	$(KUBECTL) apply -f k8s/app/

kind-observability: ## Prometheus and Grafana (make observability-deploy) on the kind cluster's context
	$(MAKE) observability-deploy OBS_KUBECTL='$(KUBECTL)'

kind-pipeline: ## ServiceAccount + Roles, the pipeline's Secrets in namespace $(DAGSTER_NS), Dagster via Helm
	$(KUBECTL) apply -f k8s/pipeline/rbac.yaml
	@# Secrets are namespaced: copy the two SQL passwords from the app's demo Secret into Dagster's namespace,
	@# where the run pods run.
	$(KUBECTL) -n $(DAGSTER_NS) create secret generic crdb-pipeline-env \
	  --from-literal=APP_WRITER_PASSWORD="$$($(KUBECTL) -n crdb-demo get secret sample-app-credentials -o jsonpath='{.data.APP_WRITER_PASSWORD}' | base64 -d)" \
	  --from-literal=APP_READER_PASSWORD="$$($(KUBECTL) -n crdb-demo get secret sample-app-credentials -o jsonpath='{.data.APP_READER_PASSWORD}' | base64 -d)" \
	  --dry-run=client -o yaml | $(KUBECTL) apply -f -
	@# Dagster's PostgreSQL password is random and made once (the database keeps the password it was initialised
	@# with), read by the chart (global.postgresqlSecretName) and its PostgreSQL (postgresql.existingSecret).
	@if ! $(KUBECTL) -n $(DAGSTER_NS) get secret dagster-postgresql-secret >/dev/null 2>&1; then \
	  $(KUBECTL) -n $(DAGSTER_NS) create secret generic dagster-postgresql-secret \
	    --from-literal=postgresql-password="$$(openssl rand -hex 24)" \
	    --from-literal=postgresql-postgres-password="$$(openssl rand -hex 24)" >/dev/null && \
	  echo "created Secret $(DAGSTER_NS)/dagster-postgresql-secret (random Dagster PostgreSQL password)"; \
	fi
	$(HELM) repo add dagster https://dagster-io.github.io/helm --force-update
	$(HELM) upgrade --install dagster dagster/dagster -n $(DAGSTER_NS) --version $(DAGSTER_CHART_VERSION) \
	  -f k8s/pipeline/dagster-values.yaml --wait --timeout 10m

kind-license: ## apply the license from Secret crdb/crdb-license (create it first, see k8s/license-secret.example.yaml)
	@$(KUBECTL) -n crdb get secret crdb-license >/dev/null 2>&1 || { \
	  echo "no Secret crdb/crdb-license: kubectl -n crdb create secret generic crdb-license --from-literal=license='<your key>'"; exit 1; }
	$(KUBECTL) -n crdb delete job crdb-license --ignore-not-found
	$(KUBECTL) apply -f k8s/license-job.yaml
	$(KUBECTL) -n crdb wait --for=condition=Complete job/crdb-license --timeout=300s

kind-loadgen: ## start the TPC-C load through crdb-writer (stop: kubectl -n crdb delete job crdb-loadgen)
	$(KUBECTL) apply -f k8s/loadgen-job.yaml

kind-status: ## CrdbCluster, CrdbNodes, pods and certificates at a glance
	$(KUBECTL) -n crdb get crdbcluster,crdbnodes,pods,certificates,svc
	$(KUBECTL) -n crdb-demo get pods,svc

kind-down: ## delete the kind cluster (all data in it is lost)
	kind delete cluster --name $(KIND_CLUSTER)
