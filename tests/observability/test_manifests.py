"""k8s/observability/: valid Kubernetes objects that fit together (names, mounts, Secrets, datasource)."""

from __future__ import annotations

import json

import yaml

from tests.manifests.support import docs, find
from tests.observability.promql_support import DASHBOARDS, K8S

# The directory `kubectl apply -f k8s/observability` reads (not its kube-prometheus-stack/ subfolder).
# Every object in it is validated strictly by tests/manifests/test_validate.py::test_every_object_validates.
FILES = sorted(K8S.glob("*.yaml"))


def all_docs() -> list[dict]:
    return [d.body for p in FILES for d in docs(p)]


def test_the_expected_files_are_there():
    names = {p.name for p in FILES}
    assert {"00-namespace.yaml", "prometheus.yaml", "grafana.yaml", "datasources.yaml", "dashboards.yaml",
            "prometheus-rules.yaml"} <= names
    # The optional kube-prometheus-stack objects need CRDs: never in the directory `kubectl apply -f` reads.
    assert not any(d["apiVersion"].startswith("monitoring.coreos.com") for d in all_docs())
    assert (K8S / "kube-prometheus-stack" / "servicemonitors.yaml").exists()


def test_everything_lives_in_monitoring_and_no_secret_is_committed():
    for d in all_docs():
        assert d["kind"] != "Secret", "secrets are created at deploy time, never committed"
        if d["kind"] not in {"Namespace", "ClusterRole", "ClusterRoleBinding"}:
            assert d["metadata"]["namespace"] == "monitoring", d["metadata"]["name"]


def test_grafana_admin_credentials_come_from_a_secret():
    grafana = find("Deployment", "grafana")
    env = {e["name"]: e for e in grafana["spec"]["template"]["spec"]["containers"][0]["env"]}
    for var, key in [("GF_SECURITY_ADMIN_USER", "admin-user"), ("GF_SECURITY_ADMIN_PASSWORD", "admin-password")]:
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "grafana-admin", "key": key}
    assert env["GF_AUTH_ANONYMOUS_ENABLED"]["value"] == "false"


def test_grafana_mounts_every_dashboard_the_provider_and_the_datasource():
    spec = find("Deployment", "grafana")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    projected = {s["configMap"]["name"] for s in volumes["dashboards"]["projected"]["sources"]}
    assert projected == {f"grafana-dashboard-{p.stem}" for p in DASHBOARDS}
    for name in projected | {"grafana-dashboard-provider", "grafana-datasources"}:
        find("ConfigMap", name)
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    provider = yaml.safe_load(find("ConfigMap", "grafana-dashboard-provider")["data"]["crdb-live-evolution.yaml"])
    assert provider["providers"][0]["options"]["path"] == mounts["dashboards"]
    assert mounts["datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["dashboard-provider"] == "/etc/grafana/provisioning/dashboards"
    home = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.rsplit("/", 1)[0] == mounts["dashboards"] and home.rsplit("/", 1)[1] in {p.name for p in DASHBOARDS}


def test_datasource_points_at_the_prometheus_service():
    ds_file = yaml.safe_load(find("ConfigMap", "grafana-datasources")["data"]["prometheus.yaml"])
    (ds,) = ds_file["datasources"]
    assert ds["uid"] == "prometheus" and ds["type"] == "prometheus" and ds["isDefault"]
    svc = find("Service", "prometheus")
    assert ds["url"] == f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc:{svc['spec']['ports'][0]['port']}"


def test_services_select_their_deployments():
    for name in ("prometheus", "grafana"):
        selector = find("Service", name)["spec"]["selector"]
        labels = find("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()


def test_prometheus_service_account_may_discover_pods():
    deploy = find("Deployment", "prometheus")
    sa = deploy["spec"]["template"]["spec"]["serviceAccountName"]
    binding = find("ClusterRoleBinding", "crdb-evolution-prometheus")
    assert {"kind": "ServiceAccount", "name": sa, "namespace": "monitoring"} in binding["subjects"]
    role = find("ClusterRole", binding["roleRef"]["name"])
    rule = next(r for r in role["rules"] if "pods" in r["resources"])
    assert {"pods", "endpoints", "services"} <= set(rule["resources"])
    assert set(rule["verbs"]) == {"get", "list", "watch"}


def test_prometheus_scrapes_the_labels_the_workloads_really_carry():
    """The app's and CockroachDB's pod templates (k8s/app, k8s/crdb-cluster.yaml) match the discovery."""
    app = next(d for d in yaml.safe_load_all((K8S.parent / "app" / "deployment.yaml").read_text())
               if d and d["kind"] == "Deployment")
    labels = app["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "sample-app" and app["metadata"]["namespace"] == "crdb-demo"
    ports = app["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert any(p.get("name") == "http" for p in ports)
    crdb = next(d for d in yaml.safe_load_all((K8S.parent / "crdb-cluster.yaml").read_text()) if d)
    pod_labels = crdb["spec"]["template"]["spec"]["podTemplate"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/name"] == "cockroachdb" and crdb["metadata"]["namespace"] == "crdb"


def test_dashboards_json_is_valid_in_the_configmap_too():
    for path in DASHBOARDS:
        data = find("ConfigMap", f"grafana-dashboard-{path.stem}")["data"][path.name]
        assert json.loads(data)["uid"]
