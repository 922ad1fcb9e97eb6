"""The cluster scrape config's relabelling, run by a REAL Prometheus on the targets pod discovery yields.

No Kubernetes API server can run here, so the pods are handed to Prometheus through file_sd with exactly
the labels the `pod` role documents (__meta_kubernetes_pod_*: one target per declared container port,
init containers flagged, a port-less container as a bare IP). Everything after discovery is the shipped
config: relabel rules, TLS, paths, the cluster label. Pod IPs are unused loopback addresses, so nothing
outside this machine is ever contacted.
"""

from __future__ import annotations

import json
import time

import pytest

from crdb_common import httpc
from tests.observability.test_prometheus_configs import k8s_prometheus_config, k8s_rules
from tests.observability.tls_front import make_ca_and_server_cert
from tests.support.prometheus import start_prometheus

pytestmark = pytest.mark.slow


def pod_targets(namespace, name, ip, labels, containers, phase="Running"):
    """Target groups of Prometheus's pod role for one pod: containers = [(name, init, [(port_name, port)])]."""
    groups = []
    base = {"__meta_kubernetes_namespace": namespace, "__meta_kubernetes_pod_name": name,
            "__meta_kubernetes_pod_ip": ip, "__meta_kubernetes_pod_phase": phase,
            "__meta_kubernetes_pod_ready": "true" if phase == "Running" else "false",
            **{f"__meta_kubernetes_pod_label_{k.replace('.', '_').replace('/', '_').replace('-', '_')}": v
               for k, v in labels.items()}}
    for cname, init, ports in containers:
        c = {**base, "__meta_kubernetes_pod_container_name": cname,
             "__meta_kubernetes_pod_container_init": "true" if init else "false"}
        if not ports:
            groups.append({"targets": [ip], "labels": c})
        for pname, port in ports:
            groups.append({"targets": [f"{ip}:{port}"], "labels": {
                **c, "__meta_kubernetes_pod_container_port_name": pname,
                "__meta_kubernetes_pod_container_port_number": str(port),
                "__meta_kubernetes_pod_container_port_protocol": "TCP"}})
    return groups


CRDB = {"app.kubernetes.io/name": "cockroachdb", "app.kubernetes.io/instance": "crdb-live-evolution"}
APP = {"app.kubernetes.io/name": "sample-app"}
PODS = {
    "cockroachdb": (
        pod_targets("crdb", "cockroachdb-abc12", "127.0.0.42", CRDB, [
            ("init-certs", True, []),
            ("cockroachdb", False, [("grpc", 26258), ("http", 8080), ("sql", 26257)])])
        + pod_targets("crdb", "cockroachdb-def34", "127.0.0.43", CRDB, [("cockroachdb", False, [])])
        + pod_targets("crdb", "cockroachdb-ghi56", "", CRDB, [("cockroachdb", False, [("http", 8080)])],
                      phase="Pending")
        + pod_targets("crdb", "tpcc-init-x1", "127.0.0.45", {"app.kubernetes.io/name": "crdb-loadgen"},
                      [("workload", False, [])])
        + pod_targets("crdb-rehearsal", "cockroachdb-rh001", "127.0.0.46", CRDB,
                      [("cockroachdb", False, [("http", 8080)])])
    ),
    "sample-app": (
        pod_targets("crdb-demo", "sample-app-7d9-xyz", "127.0.0.44", APP,
                    [("app", False, [("http", 8000)]), ("sidecar", False, [("metrics-sidecar", 9100)])])
        + pod_targets("crdb-demo", "sample-app-rehearsal-5c-q1", "127.0.0.47",
                      {"app.kubernetes.io/name": "sample-app-rehearsal"}, [("sample-app-rehearsal", False, [("http", 8000)])])
    ),
}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    root = tmp_path_factory.mktemp("k8s-discovery")
    ca, _, _ = make_ca_and_server_cert(root / "pki")
    config = k8s_prometheus_config()
    (root / "rules").mkdir()
    for name, text in k8s_rules().items():
        (root / "rules" / name).write_text(text)
    config["rule_files"] = [str(root / "rules" / "*.yml")]
    for job in config["scrape_configs"]:
        job.pop("kubernetes_sd_configs")
        sd = root / f"{job['job_name']}.json"
        sd.write_text(json.dumps(PODS[job["job_name"]]))
        job["file_sd_configs"] = [{"files": [str(sd)]}]
        if "tls_config" in job:
            job["tls_config"]["ca_file"] = str(ca)
    prom = start_prometheus(root, config=config)
    yield prom
    prom.stop()


def targets(prom, timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        data = httpc.get(f"{prom.url}/api/v1/targets", params={"state": "any"}, timeout=10).json()["data"]
        if len(data["activeTargets"]) >= 5 or time.monotonic() > deadline:
            return data
        time.sleep(0.5)


def test_one_target_per_running_pod_with_the_contract_labels(prometheus):
    data = targets(prometheus)
    active = {t["labels"]["instance"]: t for t in data["activeTargets"]}
    # The three declared ports of one CockroachDB container collapse into one target.
    assert len(data["activeTargets"]) == 5, [t["scrapeUrl"] for t in data["activeTargets"]]
    assert set(active) == {"cockroachdb-abc12", "cockroachdb-def34", "sample-app-7d9-xyz", "cockroachdb-rh001",
                           "sample-app-rehearsal-5c-q1"}
    for name in ("cockroachdb-abc12", "cockroachdb-def34"):
        t = active[name]
        ip = "127.0.0.42" if name.endswith("abc12") else "127.0.0.43"
        assert t["scrapeUrl"] == f"https://{ip}:8080/_status/vars"
        assert t["labels"] == {"job": "cockroachdb", "instance": name, "pod": name, "namespace": "crdb",
                               "cluster": "crdb-live"}
    app = active["sample-app-7d9-xyz"]
    assert app["scrapeUrl"] == "http://127.0.0.44:8000/metrics"
    assert app["labels"] == {"job": "sample-app", "instance": "sample-app-7d9-xyz", "pod": "sample-app-7d9-xyz",
                             "namespace": "crdb-demo", "cluster": "crdb-live"}


def test_the_rehearsal_cluster_and_its_app_get_their_own_cluster_label(prometheus):
    active = {t["labels"]["instance"]: t for t in targets(prometheus)["activeTargets"]}
    node = active["cockroachdb-rh001"]
    assert node["scrapeUrl"] == "https://127.0.0.46:8080/_status/vars"
    assert node["labels"]["cluster"] == "crdb-rehearsal" and node["labels"]["job"] == "cockroachdb"
    app = active["sample-app-rehearsal-5c-q1"]
    assert app["labels"]["cluster"] == "crdb-rehearsal" and app["labels"]["job"] == "sample-app"


def test_pending_pods_init_containers_other_apps_and_sidecar_ports_are_dropped(prometheus):
    dropped = targets(prometheus)["droppedTargets"]
    reasons = {(t["discoveredLabels"]["__meta_kubernetes_pod_name"],
                t["discoveredLabels"].get("__meta_kubernetes_pod_container_name")) for t in dropped}
    assert ("cockroachdb-ghi56", "cockroachdb") in reasons
    assert ("cockroachdb-abc12", "init-certs") in reasons
    assert ("tpcc-init-x1", "workload") in reasons
    assert ("sample-app-7d9-xyz", "sidecar") in reasons


def test_the_cluster_rules_load(prometheus):
    groups = httpc.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert sum(len(g["rules"]) for g in groups) == 7
